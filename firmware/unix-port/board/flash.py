# The board's flash file system on a virtual board: a folder of the host mounted at "/",
# so that the firmware's absolute paths (/config.json, /buffer, /apps, /lib) are the
# board's. A VFS object in Python over the unrooted VfsPosix: VfsPosix(root) of 1.28
# renames wrongly (both paths share one buffer), and the firmware renames to commit.


import vfs


class FlashVfs:
    def __init__(self, root):
        self.host = vfs.VfsPosix()
        self.root = root.rstrip("/")
        self.cwd = "/"

    def _p(self, path):
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        return self.root + path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        return self.host.open(self._p(path), mode)

    def ilistdir(self, path):
        return self.host.ilistdir(self._p(path))

    def mkdir(self, path):
        self.host.mkdir(self._p(path))

    def rmdir(self, path):
        self.host.rmdir(self._p(path))

    def remove(self, path):
        self.host.remove(self._p(path))

    def rename(self, old, new):
        self.host.rename(self._p(old), self._p(new))

    def stat(self, path):
        return self.host.stat(self._p(path))

    def statvfs(self, path):
        return self.host.statvfs(self._p(path))

    def chdir(self, path):
        self.cwd = path if path.startswith("/") else self.cwd.rstrip("/") + "/" + path

    def getcwd(self):
        return self.cwd


def mount(root):
    """Replace the interpreter's "/" by the board's flash folder."""
    import os
    os.umount("/")
    os.mount(FlashVfs(root), "/")
    os.chdir("/")
