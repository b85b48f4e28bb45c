"""Test-wide setup.

torchvision (test-only, for parity checks) must be imported before TensorFlow:
the other order crashes the interpreter (triton's libtriton, pulled in by
torch._dynamo, segfaults once TensorFlow's shared libraries are loaded).
"""

try:
  import torchvision  # noqa: F401
except ImportError:  # the parity tests skip themselves without it
  pass
