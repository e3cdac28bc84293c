"""torch.compile with Inductor's Triton CPU backend reaches tilebridge's compiler, unpatched."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
    import torch
    import torch._inductor.config as config
    config.cpu_backend = "triton"
    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm(96)
            self.up = torch.nn.Linear(96, 200)
            self.down = torch.nn.Linear(200, 96)

        def forward(self, x):
            h = self.down(torch.nn.functional.gelu(self.up(self.norm(x))))
            return torch.softmax(h + x, dim=-1).cumsum(-1).amax(0)

    model = Block().eval()
    x = torch.randn(37, 96)
    with torch.no_grad():
        expected = model(x)
        got = torch.compile(model)(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    print("matched")
"""


def test_inductor_triton_cpu_backend_compiles_through_tilebridge(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    env = dict(os.environ, TILEBRIDGE_DUMP=str(dump), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
               TRITON_CACHE_DIR=str(tmp_path / "triton"))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT)], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "matched" in result.stdout
    kernels = sorted(p.stem for p in dump.glob("*.c"))
    assert kernels, "no kernel went through tilebridge"
    assert all(name.startswith("triton_") for name in kernels)  # Inductor's generated kernels
