"""A slow file system for tests: a FUSE passthrough that waits before every
write, create, rename, mkdir and fsync, as a mounted Google Drive does (a
network round trip per operation).

    python tests/slow_fs.py BACKING MOUNT DELAY_S LOG

mounts it in the foreground, single-threaded, and logs what it could not
serve to LOG; ``helpers.mount_slow_fs`` starts it and can abort it. Needs
libfuse 2 (Debian ``libfuse2``) and ``fusepy``; ``.ci/run`` installs both.
"""
import errno
import logging
import os
import sys
import time

from fuse import FUSE, FuseOSError, Operations

STAT_KEYS = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
STATVFS_KEYS = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")


class SlowPassthrough(Operations):
    """Every call runs on the one FUSE thread (``nothreads``), so reads and
    writes at an offset need no lock; ``flush`` answers at once (the data
    is on the backing folder already)."""

    def __init__(self, root: str, delay_s: float):
        self.root, self.delay_s = os.path.realpath(root), delay_s

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _round_trip(self) -> None:
        time.sleep(self.delay_s)

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._path(path), uid, gid)

    def create(self, path, mode, fi=None):
        self._round_trip()
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._round_trip()
        return os.fsync(fh)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {k: getattr(st, k) for k in STAT_KEYS}

    def link(self, target, source):
        return os.link(self._path(source), self._path(target))

    def mkdir(self, path, mode):
        self._round_trip()
        return os.mkdir(self._path(path), mode)

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def readdir(self, path, fh):
        return [".", "..", *os.listdir(self._path(path))]

    def readlink(self, path):
        return os.readlink(self._path(path))

    def release(self, path, fh):
        return os.close(fh)

    def rename(self, old, new):
        self._round_trip()
        return os.rename(self._path(old), self._path(new))

    def rmdir(self, path):
        return os.rmdir(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {k: getattr(st, k) for k in STATVFS_KEYS}

    def symlink(self, name, target):
        return os.symlink(target, self._path(name))

    def truncate(self, path, length, fh=None):
        if fh is not None:
            return os.ftruncate(fh, length)
        return os.truncate(self._path(path), length)

    def unlink(self, path):
        return os.unlink(self._path(path))

    def utimens(self, path, times=None):
        return os.utime(self._path(path), times)

    def write(self, path, data, offset, fh):
        self._round_trip()
        return os.pwrite(fh, data, offset)


if __name__ == "__main__":
    backing, mount, delay, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    logging.basicConfig(filename=log, level=logging.WARNING, format="%(asctime)s %(message)s")
    FUSE(SlowPassthrough(backing, delay), mount, foreground=True, nothreads=True, big_writes=True)
