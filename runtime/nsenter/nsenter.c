// The namespace entry step of skiff-runtime's init, run as a constructor before
// the Go runtime starts any thread: setns(2) into mount and user namespaces and
// unshare(CLONE_NEWUSER) are refused to a multi-threaded process, so they can
// only happen here.
//
// The parent (runtime/container) passes a socket in _SKIFF_NSENTER_FD and
// writes one request on it:
//   u32 length, then `length` bytes of lines:
//     join <nstype-flag-decimal> <path>
//     unshare <flags-decimal>
//     timens <line for /proc/self/timens_offsets>
// and answers the `U` message (uid/gid maps written) with one byte.
// The constructor replies with fixed-size records {char kind; i32 value}:
//   'U' <pid>   the process unshared a user namespace; map it, then answer
//   'P' <pid>   the container init's pid in the parent's pid namespace
//   'E' <errno> followed by u32 length + message, then the process exits
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MAX_JOIN 16
#define MAX_REQ (64 * 1024)

struct join {
	int flag;
	int fd;
	char *path;
};

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void send_rec(int sock, char kind, int32_t value)
{
	char rec[5];
	rec[0] = kind;
	memcpy(rec + 1, &value, sizeof(value));
	if (write_full(sock, rec, sizeof(rec)) < 0)
		_exit(1);
}

static void bail(int sock, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint32_t len = (uint32_t)strlen(msg);
	send_rec(sock, 'E', err);
	write_full(sock, &len, sizeof(len));
	write_full(sock, msg, len);
	_exit(1);
}

static const char *nsname(int flag)
{
	switch (flag) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

static void join_one(int sock, struct join *j)
{
	if (setns(j->fd, j->flag) < 0)
		bail(sock, errno, "join %s namespace %s: %s", nsname(j->flag), j->path, strerror(errno));
	close(j->fd);
	j->fd = -1;
}

// The start of the data segment and the end of the bss, from the C runtime
// and the linker (weak: absent, nothing is prefaulted).
extern char __data_start[] __attribute__((weak));
extern char _end[] __attribute__((weak));

// prefault_data populates the binary's data and bss pages in one madvise
// before the Go runtime starts: it writes to about 45 of them while it
// starts (its own variables), and a page fault costs ~20 µs on the VMs this
// runs on where populating costs ~1.5 µs a page. Only the first 512 KiB: the
// bss also holds large, never touched buffers (crypto's 32 MiB DRBG).
// Failure (kernels before 5.14) only means the pages fault in one by one.
static void prefault_data(void)
{
	if (__data_start == NULL || _end == NULL)
		return;
	uintptr_t lo = (uintptr_t)__data_start & ~(uintptr_t)4095;
	uintptr_t hi = (uintptr_t)_end;
	if (hi <= lo)
		return;
	if (hi - lo > 512 * 1024)
		hi = lo + 512 * 1024;
	int saved = errno;
	madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	errno = saved;
}

// skiff_trampoline is the last step of a process that runtime/cloneinit
// cloned: the clone shares the runtime's memory, so its /proc/self/exe is the
// runtime's binary on the host, and a program whose interpreter is
// /proc/self/exe (a script "#!/proc/self/exe", or an ELF's PT_INTERP) would
// run that binary inside the container, where a process of the container
// could open it and, once no runtime runs it, write it (CVE-2019-5736). So
// the clone execs this binary through the runtime's protected handle (a
// detached read-only mount, runtime/selfexe) with
//   argv = {"skiff:[EXEC]", PROGRAM, ARGS...}, _SKIFF_TRAMPOLINE=WHO
// and this constructor, before anything else and before the Go runtime, execs
// PROGRAM with ARGS and the environment without _SKIFF_TRAMPOLINE: that
// execve resolves /proc/self/exe to the read-only handle. It runs with the
// container's credentials and seccomp filter already in place.
__attribute__((constructor(101))) static void skiff_trampoline(int argc, char **argv, char **envp)
{
	const char *who = getenv("_SKIFF_TRAMPOLINE");
	if (who == NULL)
		return;
	if (argc < 3)
		_exit(126);
	size_t n = 0;
	for (char **e = envp; *e != NULL; e++)
		n++;
	char **env = calloc(n + 1, sizeof(char *));
	if (env == NULL)
		_exit(126);
	size_t j = 0;
	for (char **e = envp; *e != NULL; e++)
		if (strncmp(*e, "_SKIFF_TRAMPOLINE=", 18) != 0)
			env[j++] = *e;
	execve(argv[1], argv + 2, env);
	int err = errno;
	dprintf(2, "skiff-runtime: %s: exec \"%s\": %s\n", who, argv[2], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

__attribute__((constructor)) static void skiff_nsenter(void)
{
	// One malloc arena: the Go runtime starts several threads through
	// pthread_create, and glibc would give each its own arena (a 64 MiB
	// reservation, trimmed, and a page fault) for the few bytes of C
	// allocation they make.
	mallopt(M_ARENA_MAX, 1);
	const char *env = getenv("_SKIFF_NSENTER_FD");
	if (env == NULL || *env == '\0') {
		prefault_data();
		return;
	}
	int sock = atoi(env);
	if (sock < 3)
		_exit(1);

	uint32_t len;
	if (read_full(sock, &len, sizeof(len)) < 0)
		_exit(1);
	if (len > MAX_REQ)
		bail(sock, EINVAL, "namespace request of %u bytes is too large", len);
	char *req = calloc(1, len + 1);
	if (req == NULL)
		bail(sock, ENOMEM, "namespace request: out of memory");
	if (read_full(sock, req, len) < 0)
		_exit(1);

	struct join joins[MAX_JOIN];
	int njoin = 0;
	int unshare_flags = 0;
	char *timens[8];
	int ntimens = 0;

	char *save = NULL;
	for (char *line = strtok_r(req, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "join ", 5) == 0) {
			char *rest = line + 5;
			char *sp = strchr(rest, ' ');
			if (sp == NULL || njoin == MAX_JOIN)
				bail(sock, EINVAL, "malformed namespace request line %s", line);
			*sp = '\0';
			joins[njoin].flag = atoi(rest);
			joins[njoin].path = sp + 1;
			joins[njoin].fd = -1;
			njoin++;
		} else if (strncmp(line, "unshare ", 8) == 0) {
			unshare_flags = atoi(line + 8);
		} else if (strncmp(line, "timens ", 7) == 0) {
			if (ntimens < 8)
				timens[ntimens++] = line + 7;
		} else {
			bail(sock, EINVAL, "malformed namespace request line %s", line);
		}
	}

	// Open every path first: once in another mount namespace, the paths
	// would resolve there.
	for (int i = 0; i < njoin; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			bail(sock, errno, "open %s namespace %s: %s", nsname(joins[i].flag), joins[i].path, strerror(errno));
	}
	// The user namespace first, so the others are joined with its
	// capabilities; the mount namespace last.
	for (int i = 0; i < njoin; i++)
		if (joins[i].flag == CLONE_NEWUSER)
			join_one(sock, &joins[i]);
	for (int i = 0; i < njoin; i++)
		if (joins[i].fd >= 0 && joins[i].flag != CLONE_NEWNS)
			join_one(sock, &joins[i]);
	for (int i = 0; i < njoin; i++)
		if (joins[i].fd >= 0)
			join_one(sock, &joins[i]);

	if (unshare_flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail(sock, errno, "create user namespace: %s", strerror(errno));
		// The parent writes uid_map and gid_map, then answers.
		send_rec(sock, 'U', getpid());
		char ack;
		if (read_full(sock, &ack, 1) < 0)
			_exit(1);
		if (ack != 'u')
			_exit(1);
		if (setresgid(0, 0, 0) < 0)
			bail(sock, errno, "become root in the new user namespace (setresgid 0): %s", strerror(errno));
		if (setresuid(0, 0, 0) < 0)
			bail(sock, errno, "become root in the new user namespace (setresuid 0): %s", strerror(errno));
	}

	int rest = unshare_flags & ~(CLONE_NEWUSER | CLONE_NEWCGROUP);
	if (rest != 0 && unshare(rest) < 0)
		bail(sock, errno, "create namespaces (flags %#x): %s", rest, strerror(errno));

	if (unshare_flags & CLONE_NEWTIME) {
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			bail(sock, errno, "open /proc/self/timens_offsets: %s", strerror(errno));
		for (int i = 0; i < ntimens; i++) {
			if (write(fd, timens[i], strlen(timens[i])) < 0)
				bail(sock, errno, "write time namespace offset %s: %s", timens[i], strerror(errno));
		}
		close(fd);
	}

	// A new or joined pid or time namespace only holds the children of the
	// process that entered it: fork, and let the child be the init.
	int need_fork = (unshare_flags & (CLONE_NEWPID | CLONE_NEWTIME)) != 0;
	for (int i = 0; i < njoin; i++)
		if (joins[i].flag == CLONE_NEWPID || joins[i].flag == CLONE_NEWTIME)
			need_fork = 1;
	free(req);

	if (!need_fork) {
		send_rec(sock, 'P', getpid());
		prefault_data();
		return;
	}
	pid_t child = fork();
	if (child < 0)
		bail(sock, errno, "fork into the new pid namespace: %s", strerror(errno));
	if (child > 0) {
		send_rec(sock, 'P', child);
		_exit(0);
	}
	// The intermediate process exits at once; do not die with it.
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	// After the fork: the child would take a copy-on-write fault for each
	// page the parent had touched.
	prefault_data();
}
