#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

/// renameat2(2) with RENAME_NOREPLACE: glibc declares it only under _GNU_SOURCE, which Swift does not set.
int cx_rename_noreplace(const char *oldpath, const char *newpath);

/// fcntl(F_SETLEASE): fcntl is variadic. Returns 0, or -1 with errno.
int cx_set_lease(int fd, int type);

/// pidfd_open(2), which glibc 2.36 lacks a wrapper for: a descriptor that polls readable when the
/// process `pid` ends. Returns the descriptor, or -1 with errno.
int cx_pidfd_open(int pid);

#endif
