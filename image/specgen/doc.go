// Package specgen owns turning an image config and docker-style run options
// into an OCI runtime spec (config.json) for skiff-runtime or runc, with
// docker's defaults, and writing the per-container /etc/hostname, /etc/hosts
// and /etc/resolv.conf that are bind-mounted into the container.
//
// It must not pull, unpack, mount or run anything: the engine hands it an
// image config and the path of an already mounted root filesystem, and
// gets back a spec and the facts it should record (Info). The only things
// it reads are the image's /etc/passwd and /etc/group (resolved inside the
// root filesystem, so a symlink pointing out of it never reaches the host's
// files) and, for docker's host-dependent defaults, a few host files:
// /proc/sys/kernel/cap_last_cap, /sys/fs/cgroup's file system type,
// /sys/devices/system/cpu/possible, /proc/sys/net/ipv4/*, /dev (privileged
// containers only), and /etc/hosts and /etc/resolv.conf (WriteEtcFiles).
//
// # Docker's defaults
//
// The defaults are those of dockerd (moby, daemon/pkg/oci/defaults.go,
// daemon/oci_linux.go, daemon/seccomp_linux.go, daemon/commit.go,
// daemon/create.go, daemon/container.go, daemon/container/container.go and
// daemon/libnetwork), reproduced, not imported:
//
//   - capabilities: bounding, permitted and effective set to docker's 14
//     (CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
//     SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE); no
//     inheritable or ambient set, so a non-root user ends up with none
//     effective. --cap-add/--cap-drop follow docker's TweakCapabilities,
//     "ALL" included; --privileged gives every capability the running
//     kernel knows that the calling process's bounding set holds (docker's
//     "available in the current environment"), and --cap-add of any other
//     is refused.
//   - seccomp: docker's default profile resolved for the bounding set
//     (runtime/seccomp.DefaultProfileWithCaps); none when privileged or
//     with seccomp=unconfined; a Docker-format profile given with
//     seccomp=<json> is resolved the same way and compiled to check it.
//   - mounts: /proc, /dev (tmpfs), /dev/pts, /sys (ro), /sys/fs/cgroup (ro),
//     /dev/mqueue, /dev/shm (tmpfs, 64 MiB), with docker's options, in
//     docker's order; then the caller's mounts, sorted parents first, each
//     replacing a default mount with the same destination (a /dev mount
//     drops every default under /dev).
//   - masked and read-only paths: docker's lists, including the
//     thermal_throttle directories of the host's possible CPUs; none when
//     privileged (and /sys and the cgroup mount become read-write).
//   - namespaces: mount, network, uts, pid, ipc, and cgroup when the host
//     runs cgroup v2 (docker's default cgroupns mode is private on v2 and
//     host on v1). --network host leaves the network namespace out. Recent
//     moby (2026) also adds a time namespace; skiff does not, since
//     Debian 12's runc 1.1 cannot create one.
//   - sysctls: net.ipv4.ping_group_range="0 2147483647" and
//     net.ipv4.ip_unprivileged_port_start="0" for a container with its own
//     network namespace, when the host kernel has them.
//   - devices: the runtime's default /dev nodes and docker's device cgroup
//     rules (deny all; allow null, zero, full, random, urandom, tty,
//     console, ptmx; deny tun); privileged containers get every host device
//     and an allow-all rule.
//   - process: env PATH (docker's default, replaced by the image's),
//     HOSTNAME, TERM=xterm with a terminal, then the merged image and user
//     environment; cwd "/" unless the image or -w says otherwise;
//     oomScoreAdj 0; no rlimits but --ulimit's; noNewPrivileges false.
//   - --device: the host node (or every node under a host directory),
//     symlinks followed, made at the container path with the host's mode
//     and owner, and a device cgroup allow rule with its permissions.
//   - --group-add: names of the image's /etc/group or numbers, appended
//     to additionalGids.
//   - user: docker's (moby/sys/user) rules, see Generate.
//   - command: docker's Entrypoint/Cmd merge, see Generate.
//   - /etc files: see WriteEtcFiles.
package specgen
