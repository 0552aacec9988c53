"""The bad-input probe (tools/analysis/probe_bad_input.py): every case ends
as expected, handled or refused with an error naming its cause; none is
silent and none unclear. docs/en/reliability.md shows its table."""
import pytest

from helpers import load_tool

probe = load_tool('analysis/probe_bad_input')


@pytest.fixture(scope='module')
def probe_data(tmp_path_factory):
    return probe.make_data(str(tmp_path_factory.mktemp('probe')))


@pytest.mark.parametrize('case', probe.CASES, ids=[c.id for c in probe.CASES])
def test_probe_case(case, probe_data, tmp_path):
    out = probe.run_case(case, probe_data, str(tmp_path))
    assert out.result == case.expected, f'{case.id}: {out.result}: {out.detail}'


def test_probe_has_at_least_forty_cases():
    assert len(probe.CASES) >= 40
    assert len({c.id for c in probe.CASES}) == len(probe.CASES)
