# The GAP-over-features variant: the stock GlobalAveragePooling neck on the
# last feature map instead of the cluster centers (§3.3 uses the centers).
_base_ = './clusterformer-tiny_16xb64_in1k.py'

model = dict(
    backbone=dict(out_centers=False),
    neck=dict(_delete_=True, type='GlobalAveragePooling'))

# GAP reads the stage-4 map: every parameter gets a gradient.
find_unused_parameters = False
