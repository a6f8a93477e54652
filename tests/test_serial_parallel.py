"""interproc.parallel: what can be tested without a parallel port.

There is no parallel port on the test machines, so the ioctls themselves
never reach hardware here.  Tested: the ioctl numbers against the kernel
header (when a C compiler and linux/ppdev.h exist), argument checks, and the
errors for a missing port or a device that is not a ppdev port.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import interproc.parallel as parallel
from interproc import InterprocError, NotFound
from interproc import _parallel

NAMES = ["PPSETMODE", "PPRSTATUS", "PPRCONTROL", "PPWCONTROL", "PPRDATA", "PPWDATA", "PPCLAIM",
         "PPRELEASE", "PPYIELD", "PPFCONTROL", "PPEXCL", "PPDATADIR"]


def test_ioctl_numbers_match_known_x86_arm_values():
    if _parallel._ioc_layout(os.uname().machine)[3] != 14:
        pytest.skip("reference values below are for the asm-generic ioctl layout")
    assert _parallel.PPCLAIM == 0x708B
    assert _parallel.PPRELEASE == 0x708C
    assert _parallel.PPEXCL == 0x708F
    assert _parallel.PPRSTATUS == 0x80017081
    assert _parallel.PPWDATA == 0x40017086
    assert _parallel.PPRDATA == 0x80017085
    assert _parallel.PPWCONTROL == 0x40017084
    assert _parallel.PPFCONTROL == 0x4002708E
    assert _parallel.PPDATADIR == 0x40047090


def test_ioctl_numbers_match_the_kernel_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not os.path.exists("/usr/include/linux/ppdev.h"):
        pytest.skip("needs a C compiler and linux/ppdev.h to compare against")
    src = tmp_path / "pp.c"
    src.write_text(
        "#include <stdio.h>\n#include <sys/ioctl.h>\n#include <linux/parport.h>\n#include <linux/ppdev.h>\n"
        "int main(void){\n"
        + "".join(f'printf("{n} %lu\\n", (unsigned long){n});\n' for n in NAMES)
        + "return 0;}\n"
    )
    exe = tmp_path / "pp"
    subprocess.run([cc, str(src), "-o", str(exe)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10).stdout
    header = {name: int(value) for name, value in (line.split() for line in out.splitlines())}
    assert header == {n: getattr(_parallel, n) for n in NAMES}


def test_other_ioctl_layouts():
    # powerpc/mips: READ=2, WRITE=4, NONE=1, 13 size bits.
    assert _parallel._ioc_layout("ppc64le") == (1, 4, 2, 13)
    assert _parallel._ioc_layout("x86_64") == (0, 1, 2, 14)
    assert _parallel._ioc_layout("aarch64") == (0, 1, 2, 14)


def test_missing_port_is_not_found_with_a_hint():
    missing = next(f"/dev/parport{n}" for n in range(50, 100) if not os.path.exists(f"/dev/parport{n}"))
    n = int(missing.removeprefix("/dev/parport"))
    with pytest.raises(NotFound) as info:
        parallel.open(n)
    assert missing in str(info.value)
    assert "modprobe" in str(info.value) and "ppdev" in str(info.value)
    with pytest.raises(FileNotFoundError):  # NotFound is a FileNotFoundError too
        parallel.open(missing)


@pytest.mark.parametrize("port,exc", [(-1, ValueError), ("parport0", ValueError), (1.5, TypeError),
                                       (True, TypeError), (None, TypeError)])
def test_bad_port_arguments(port, exc):
    with pytest.raises(exc, match="port"):
        parallel.open(port)


def test_a_device_that_is_not_a_parallel_port():
    with pytest.raises(InterprocError, match="not a ppdev parallel port"):
        parallel.open("/dev/null")
    # Opened without claiming: the line calls refuse until claim().
    with parallel.open("/dev/null", claim=False) as pp:
        assert not pp.claimed
        with pytest.raises(InterprocError, match="claim"):
            pp.read_status()
        with pytest.raises(InterprocError, match="claim"):
            pp.write_data(1)
        with pytest.raises(InterprocError, match="not a ppdev"):
            pp.claim()
    assert pp.closed
    with pytest.raises(Exception, match="closed"):
        pp.fileno()


def test_byte_arguments_are_checked_before_any_ioctl():
    with parallel.open("/dev/null", claim=False) as pp:
        for bad, exc in [(256, ValueError), (-1, ValueError), ("A", TypeError), (1.0, TypeError), (True, TypeError)]:
            with pytest.raises(exc, match="0..255"):
                pp.write_data(bad)
            with pytest.raises(exc, match="0..255"):
                pp.write_control(bad)
            with pytest.raises(exc, match="0..255"):
                pp.frob_control(bad, 0)
        with pytest.raises(TypeError, match="True or False"):
            pp.data_direction(input=1)


def test_ports_lists_parport_devices():
    assert parallel.ports() == sorted(p for p in parallel.ports() if p.startswith("/dev/parport"))
