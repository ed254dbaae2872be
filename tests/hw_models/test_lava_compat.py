"""The Lava 3.11 import fix: it must be needed, applied, narrow, and a no-op on fixed sources."""

import subprocess
import sys

from hw_models import lava_compat

FAULTY = '''@dataclass
class CoreEncoder:
    x: ByteEncoder = ByteEncoder()
    y: ByteEncoder = ByteEncoder()
'''


def test_fix_source_rewrites_only_mutable_bytencoder_defaults():
    fixed = lava_compat.fix_source(FAULTY + "    z: int = 0\n")
    assert "ByteEncoder()" not in fixed
    assert fixed.count("field(default_factory=ByteEncoder)") == 2
    assert "z: int = 0" in fixed


def test_fix_source_leaves_fixed_code_untouched():
    good = "    x: ByteEncoder = field(default_factory=ByteEncoder)\n"
    assert lava_compat.fix_source(good) == good


def test_lava_fails_without_the_fix_and_imports_with_it():
    """Run in fresh interpreters so the import state of this test session does not matter."""
    plain = subprocess.run([sys.executable, "-c", "import lava.magma.compiler.var_model"],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "mutable default" in plain.stderr, "Lava no longer needs the fix: drop it"
    fixed = subprocess.run(
        [sys.executable, "-c",
         "import hw_models; import lava.magma.compiler.var_model as vm; "
         "from hw_models.lava_compat import patch_applied; "
         "e1, e2 = vm.CoreEncoder(), vm.CoreEncoder(); assert e1.x is not e2.x; print(patch_applied())"],
        capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "True"
