"""Migration mode: a script written for CUDA runs unedited on the CPU (`python -m tilebridge run`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import tilebridge

CUDA_SCRIPT = '''
import sys
import torch
import triton
import triton.language as tl


@triton.jit
def axpy(x_ptr, y_ptr, out_ptr, a, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, a * tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)


assert torch.cuda.is_available()
device = torch.device("cuda", 0)
torch.cuda.manual_seed(0)
x = torch.randn(1000, device="cuda")
y = torch.rand(1000).cuda()
out = torch.empty_like(x, device=device)
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
axpy[(triton.cdiv(1000, 256),)](x, y, out, 2.0, 1000, BLOCK=256)
end.record()
torch.cuda.synchronize()
model = torch.nn.Linear(4, 3).to("cuda:0")
print(model(torch.ones(2, 4, device=0)).shape, torch.cuda.get_device_properties(0).multi_processor_count > 0)
torch.testing.assert_close(out, 2 * x + y)
print("ok", sys.argv[1:], out.device, start.elapsed_time(end) >= 0)
'''


def test_cuda_script_runs_unedited(tmp_path: Path) -> None:
    path = tmp_path / "cuda_script.py"
    path.write_text(CUDA_SCRIPT)
    done = subprocess.run([sys.executable, "-m", "tilebridge", "run", str(path), "--flag", "3"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok ['--flag', '3'] cpu True" in done.stdout
    assert "torch.Size([2, 3]) True" in done.stdout


def test_migrate_maps_devices_and_unmigrate_restores() -> None:
    available = torch.cuda.is_available()
    tilebridge.migrate()
    try:
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        x = torch.ones(3, device="cuda:0")
        assert x.device.type == "cpu" and x.cuda() is x
        assert torch.zeros(2, device=torch.device("cuda")).to("cuda", torch.float16).dtype == torch.float16
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        end.record()
        assert start.elapsed_time(end) >= 0
        torch.cuda.manual_seed(3)
        first = torch.rand(4, device="cuda")
        torch.cuda.manual_seed(3)
        assert torch.equal(first, torch.rand(4))
        torch.cpu.set_stream(torch.cpu.Stream())  # device-generic code: getattr(torch, device.type).set_stream
    finally:
        tilebridge.unmigrate()
    assert torch.cuda.is_available() == available
    assert not hasattr(torch.cpu, "set_stream")
    assert torch.ones(1, device="cpu").device.type == "cpu"
