#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CSystemShims.h"

int cx_rename_noreplace(const char *oldpath, const char *newpath) {
    return renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, RENAME_NOREPLACE);
}

int cx_set_lease(int fd, int type) {
    return fcntl(fd, F_SETLEASE, type);
}

int cx_pidfd_open(int pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
