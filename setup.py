"""The Rust half of `pip install .` (pyproject.toml has the rest).

Why setuptools-rust: xent's Python binding is ctypes over the C library, not
an extension module, so it needs a backend that builds a plain cdylib with
cargo and puts it in the package; setuptools-rust does that (Binding.NoBinding)
and is a small, maintained layer on setuptools. maturin is built for PyO3 or
cffi modules: its cffi binding would bring a second FFI layer and a runtime
dependency for a library that is already loaded with the standard library.

Two adjustments, because the library is not a CPython extension:
- its file is `libxent.so` (`xent.dll`, `libxent.dylib`), the name
  `xent/__init__.py` looks for, not `libxent.cpython-311-x86_64-linux-gnu.so`;
- the wheel is tagged `py3-none-<platform>`: it works with any Python 3 on
  that platform, since nothing in it is compiled against Python.
"""

import os
import re
import sys

from setuptools import setup
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

from setuptools.command.bdist_wheel import bdist_wheel


if sys.platform == "win32":
    LIBRARY = "xent.dll"
elif sys.platform == "darwin":
    LIBRARY = "libxent.dylib"
else:
    LIBRARY = "libxent.so"


class BuildRust(build_rust):
    def get_dylib_ext_path(self, ext, target_fname):
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), LIBRARY)


class BdistWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


def cargo_version():
    """The package's version is the crate's: one number for all of xent."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "Cargo.toml"), encoding="utf-8") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


setup(
    version=cargo_version(),
    rust_extensions=[
        RustExtension(
            "xent.libxent",
            path="Cargo.toml",
            binding=Binding.NoBinding,
            strip=Strip.All,
            args=["--locked"],
        )
    ],
    cmdclass={"build_rust": BuildRust, "bdist_wheel": BdistWheel},
    zip_safe=False,
)
