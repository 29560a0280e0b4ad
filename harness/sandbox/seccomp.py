"""A seccomp filter that forbids new user namespaces, built with the system's libseccomp.

When the harness runs as root, bubblewrap cannot put the command in a user namespace of its own
(``--disable-userns`` needs ``--unshare-user``, which as root would map the sandbox user to the
host's root). The command runs as an unprivileged uid, but that uid may still create user
namespaces (``unshare -Ur``) and gain capabilities inside them: a large kernel attack surface.
This filter, handed to bubblewrap with ``--seccomp FD``, makes ``unshare`` and ``clone`` fail with
EPERM when asked for ``CLONE_NEWUSER``. ``clone3`` passes its flags in memory a filter cannot read,
so it fails with ENOSYS: the C library then falls back to ``clone``, which the filter can check
(the way container runtimes handle it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from harness.errors import SandboxError

CLONE_NEWUSER = 0x10000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7


def _errno_action(number: int) -> int:
    """``SCMP_ACT_ERRNO(number)``: the call fails with that error."""
    return 0x00050000 | (number & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``: compare one syscall argument."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _library() -> ctypes.CDLL:
    """libseccomp, or SandboxError saying how to install it."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as error:
        raise SandboxError(
            "running as root needs libseccomp (apt-get install libseccomp2) to forbid user namespaces "
            f"in the sandbox: {error}"
        ) from error
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def no_user_namespaces_fd() -> int:
    """A readable descriptor holding the compiled filter (bubblewrap's ``--seccomp FD``); the caller closes it."""
    lib = _library()
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise SandboxError("libseccomp could not start a filter")
    try:
        newuser = (_ArgCmp * 1)(_ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))  # flags & NEWUSER
        rules = [("unshare", _errno_action(errno.EPERM), newuser), ("clone", _errno_action(errno.EPERM), newuser),
                 ("clone3", _errno_action(errno.ENOSYS), None)]
        for name, action, compare in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a system call on this architecture
            done = lib.seccomp_rule_add_array(context, action, number, 1 if compare else 0, compare)
            if done != 0:
                raise SandboxError(f"libseccomp could not add the rule for {name}: {os.strerror(-done)}")
        read, write = os.pipe()
        try:
            done = lib.seccomp_export_bpf(context, write)  # a few hundred bytes: fits in the pipe buffer
        finally:
            os.close(write)
        if done != 0:
            os.close(read)
            raise SandboxError(f"libseccomp could not export the filter: {os.strerror(-done)}")
        return read
    finally:
        lib.seccomp_release(context)
