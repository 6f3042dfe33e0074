"""What may reach ngspice as netlist text: every line boundary any reader honours is flattened in
comments and refused in statements, only model-library cards pass as model text, numbers stay in
ngspice's range, and the provenance injection that ran a shell command is closed."""

import subprocess

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.circuits.netlist import (
    subcircuit_lines,
    MAX_TRAN_POINTS,
    MAX_TRAN_STOP_S,
    Netlist,
    check_analysis,
    check_model_text,
    check_netlist,
    comment,
    included_paths,
    name,
    number,
    tran_command,
)
from circuitnn.circuits.program import ProgrammingCircuit, PulseSpec
from circuitnn.devices.base import preset as medium
from circuitnn.errors import NetlistError

# Every boundary str.splitlines() honours, plus the other control characters and NUL.
BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\t", "\x01", "\x1b", "\x7f", "\x9b", "\ud800"]


@pytest.mark.parametrize("separator", BREAKS + CONTROLS)
def test_comment_is_one_line_for_every_boundary(separator):
    line = comment(f"ok{separator}.control{separator}shell touch pwned{separator}.endc")
    assert line.startswith("* ") and len(line.splitlines()) == 1
    assert not any(ch in line for ch in BREAKS + CONTROLS)
    assert check_model_text(line) == line


def test_comment_never_reads_as_an_ngspice_command():
    assert comment("# shell touch pwned").startswith("* #")
    with pytest.raises(NetlistError, match=r"'\*#' lines are ngspice commands"):
        check_model_text("*# shell touch pwned")


@pytest.mark.parametrize("separator", BREAKS + CONTROLS)
def test_model_text_with_a_break_inside_a_statement_is_refused(separator):
    with pytest.raises(NetlistError):
        check_model_text(f"Rhold x xs 1e12{separator}.control")
    with pytest.raises(NetlistError):
        check_model_text(f"* fine\nRhold x xs 1e12 {separator}.endc")


@pytest.mark.parametrize("card", [".control", ".endc", ".controlx", " .control", "\t.control", ".include x.lib",
                                  ".lib x.lib", ".exec", ".end", ".op", ".tran 1 1", ".options x", ".if (1)",
                                  "+ .control", ".csparam x=1", ".save all", ".temp 27"])
def test_model_text_takes_only_library_cards(card):
    with pytest.raises(NetlistError):
        check_model_text(f".subckt m p n\nR1 p n 1\n{card}\n.ends m")


def test_model_library_text_passes():
    for text in ("\n".join(subcircuit_lines(medium("Cr").spice_subcircuit())), ".param a=1\n.func f(x) {x*2}\n.model sw1 sw vt=0.5"):
        assert check_model_text(text) == text


def test_provenance_with_a_control_block_cannot_run_a_shell_command(tmp_path):
    payload = "x\n.control\nshell touch {}\n.endc".format(tmp_path / "pwned")
    device = medium("Cr").replace(provenance=payload)
    text = ProgrammingCircuit(device).netlist(0.3, PulseSpec(1.0, 1e-5))
    assert ".control" not in [line.strip() for line in text.splitlines()]
    (tmp_path / "p.cir").write_text(text)
    subprocess.run(["ngspice", "-b", "-n", "p.cir"], cwd=tmp_path, capture_output=True, timeout=60)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("separator", BREAKS)
def test_a_device_module_cannot_smuggle_a_statement(separator):
    # A model name with a line boundary in it reaches the .subckt line itself: refused, not written.
    device = medium("Cr").replace(medium=f"Cr{separator}.control")
    with pytest.raises(NetlistError):
        Crossbar(default_spec(device, name="x")).netlist(np.full(30, 0.5), np.zeros(9))


@pytest.mark.parametrize("title", ["*ng_script", " *NG_SCRIPT x", "*# shell ls", ".control", "+x"])
def test_titles_that_ngspice_would_not_read_as_a_title_are_refused(title):
    with pytest.raises(NetlistError, match="title"):
        check_netlist(f"{title}\nr1 a 0 1\n.end\n")


def test_netlist_title_is_flattened_and_starts_with_a_word():
    text = Netlist("*ng_script\u2028.control\x85shell ls").text()
    assert text.splitlines()[0].startswith("circuitnn: ") and len(text.splitlines()) == 2


@pytest.mark.parametrize("text, problem", [
    ("t\nr1 a 0 1\n.end\n.control\nshell ls\n.endc\n", "after .end"),
    ("t\nr1 a 0 1\n", "does not end with .end"),
    ("t\nr1 a 0 `ls`\n.end\n", "character '`'"),
    ("t\nr1 a 0 1 ; shell ls\n.end\n", "character ';'"),
    ("t\nr1 a 0 1\x00\n.end\n", "not allowed in a statement"),
    ("t\n.include /etc/passwd\n.end\n", "include"),
    ("t\n1r a 0 1\n.end\n", "neither a card nor an element"),
])
def test_whole_netlists_are_parsed_as_ngspice_splits_them(text, problem):
    with pytest.raises(NetlistError, match=problem):
        check_netlist(text)


def test_include_is_refused_where_it_cannot_resolve():
    text = "t\n.include models/msdc.lib\nr1 a 0 1\n.end\n"
    assert check_netlist(text) == text
    with pytest.raises(NetlistError, match="inline"):
        check_netlist(text, allow_include=False)


def test_included_paths_are_those_check_netlist_accepted():
    """The one reading of '.include' lines that the batch path and the PySpice bridge use."""
    text = "t\n* .include not/this.lib\n.include models/msdc.lib\n  .INCLUDE ../lib/b.lib  \nr1 a 0 1\n.end\n"
    assert check_netlist(text) == text
    assert included_paths(text) == ["models/msdc.lib", "../lib/b.lib"]
    assert included_paths("t\nr1 a 0 1\n.end\n") == []


@pytest.mark.parametrize("bad", ["a\n", "a\nb", "a\u2028", "a\x00", "a\r"])
def test_names_use_full_matches(bad):
    with pytest.raises(NetlistError):
        name(bad)


@pytest.mark.parametrize("bad", [1e301, -1e301, 1e-301, 10 ** 400, -(10 ** 400), 2 ** 1100, float("nan")])
def test_numbers_outside_ngspice_range_are_refused(bad):
    with pytest.raises(NetlistError, match="out of range|too large|finite"):
        number(bad)


def test_numbers_inside_the_range_are_written_exactly():
    assert number(0) == "0" and number(1e300) == "1e+300" and number(-1e-300) == "-1e-300"
    assert number(np.float32(0.5)) == "0.5" and number(np.int64(3)) == "3"
    assert float(number(1 / 3)) == pytest.approx(1 / 3, rel=1e-12)


@pytest.mark.parametrize("analysis", [
    "tran 1e400 1e400", "tran 1e+300 1e+300", "tran 0 1", "tran -1e-09 1e-06", "tran 1e-15 1",
    f"tran 1 {MAX_TRAN_STOP_S * 10:g}", "tran 1e-09 1e-06 1e-06 1e-08", "tran 1n 1u", "op\n", "tran 1e-09",
    "tran 1e-09 1e-06 0 0", "OP", "op; shell ls",
])
def test_analysis_commands_are_bounded(analysis):
    with pytest.raises(NetlistError):
        check_analysis(analysis)


def test_tran_command_checks_its_limits():
    assert check_analysis(tran_command(1e-8, 1e-5, 1e-8)) == "tran 1e-08 1e-05 0 1e-08"
    with pytest.raises(NetlistError, match="steps"):
        tran_command(1e-6, MAX_TRAN_POINTS * 1e-6 * 10)
    with pytest.raises(NetlistError, match="stop time"):
        tran_command(10.0, MAX_TRAN_STOP_S * 2)
    with pytest.raises(NetlistError):
        tran_command(1e-8, float("inf"))
