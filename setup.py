"""Cython extensions only; all metadata lives in pyproject.toml.

The build needs no network once Cython and numpy are present. Set SPECKSTREAM_NO_EXT=1 to skip the
extensions (the package then runs on its pure-numpy / pure-Python fallbacks).
"""
import os

import numpy
from setuptools import Extension, setup

ext_modules = []
if os.environ.get("SPECKSTREAM_NO_EXT") != "1":
    from Cython.Build import cythonize

    compile_args = ["-O3"]
    extensions = [
        Extension("speckstream.codec._ccodec", ["codec/_ccodec.pyx"], include_dirs=[numpy.get_include()],
                  extra_compile_args=compile_args),
        Extension("speckstream.sim._ccore", ["sim/_ccore.pyx"], include_dirs=[numpy.get_include(), "sim"],
                  extra_compile_args=compile_args),
    ]
    ext_modules = cythonize(
        extensions,
        include_path=["codec"],  # codec/_records.pxd: the record layouts both extensions share
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False},
    )

setup(ext_modules=ext_modules)
