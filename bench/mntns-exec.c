/*
 * bench/mntns-exec.c: how the benchmark runs crun on a hybrid-cgroup host.
 *
 *   mntns-exec PROGRAM [ARGS...]      (PROGRAM: an absolute path)
 *
 * Joins the mount namespace bound at NS_PATH (fixed when bench/run.sh
 * compiles this file; in it /dev/null hides
 * /sys/fs/cgroup/unified/cgroup.controllers, see crun-hybrid-wrap.sh for
 * why) and executes PROGRAM there. It has no C library: the whole program is
 * four system calls, so the cost it adds to each crun call is about that of
 * one execve of a one-page binary, which the harness measures and subtracts
 * (`mntns-exec /bin/true` against `/bin/true`). The shell wrapper it
 * replaces in the timed runs cost some 3 ms of CPU per call, and subtracting
 * that much from every sample was the larger error.
 *
 * Exit codes: 2 usage, 111 the namespace could not be joined, 127 the
 * program could not be executed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>

#ifndef NS_PATH
#error "compile with -DNS_PATH='\"/path/to/the/bound/mnt/namespace\"'"
#endif

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static void __attribute__((noreturn)) leave(int code)
{
    for (;;)
        sys3(SYS_exit_group, code, 0, 0);
}

/* sp: the kernel's initial stack (argc, argv..., NULL, envp..., NULL). */
void __attribute__((noreturn, used)) mntns_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2)
        leave(2);
    long fd = sys3(SYS_open, (long)NS_PATH, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0 || sys3(SYS_setns, fd, CLONE_NEWNS, 0) < 0)
        leave(111);
    sys3(SYS_close, fd, 0, 0);
    sys3(SYS_execve, (long)argv[1], (long)(argv + 1), (long)envp);
    leave(127);
}

__asm__(".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call mntns_main\n");
