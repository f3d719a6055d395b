// Package containers is skiffd's container service: docker's container
// lifecycle (create, start, stop, kill, restart, remove, wait, logs,
// attach) on top of the engine's libraries. It owns, per container, the
// writable snapshot and its mount, the bundle (config.json from
// image/specgen), the /etc files, the container log, one skiff-shim while
// the container exists in the runtime (shim/client), the container record
// in metadata (engine/metadata), and a watcher goroutine that records each
// exit.
//
// It must not pull or unpack images (it asks an ImageSource for a local,
// unpacked image), must not speak gRPC (package server adapts it), and must
// not import an OCI runtime: the runtime is reached only through the shim
// and, for recovery, through the runtime's command line.
//
// # Files
//
//	<State>/containers/<ns>/<id>/config.json   the bundle (volatile; rewritten from metadata)
//	<State>/containers/<ns>/<id>/rootfs         the snapshot's mount
//	<State>/s/<hash of ns/id>/                  the shim's state dir (socket, exit file); short
//	                                            because a unix socket path must fit 107 bytes
//	<State>/runtime/<runtime>/<ns>/             the runtime's --root
//	<Root>/containers/<ns>/<id>/container.log   the CRI log (persistent)
//	<Root>/containers/<ns>/<id>/{hostname,hosts,resolv.conf}
//
// The snapshot key is "ctr/<ns>/<id>"; the cgroup is /skiff/<ns>/<id>.
//
// # Lifecycle
//
// A container is created (record, snapshot, bundle; no shim), then
// started: a shim is spawned (the runtime's create) unless one already
// holds the created container (Attach spawns one, so that a client can
// attach before the process starts), and started. A watcher waits on the
// shim; at the exit it records the exit code and the time, deletes the
// container in the runtime (the shim then exits), and removes the
// container if it was created with AutoRemove. Starting an exited
// container spawns a fresh shim on the same bundle and snapshot; the log is
// appended to. The status words are docker's (see the Status constants);
// an operation not allowed in the current status fails with a
// *StateError, of class errdefs.ErrFailedPrecondition.
//
// # Restarts of the engine
//
// Nothing is kept in memory that Recover cannot rebuild from metadata, the
// shims and the runtime: a running container's shim is reconnected and
// watched again; a shim that is gone left an exit file, whose code is
// recorded; with no exit file either (the shim was killed), the runtime is
// asked, the container is killed and deleted through the runtime, and its
// exit is recorded as unknown: ExitKnown false and exit code 255 (docker's
// code for a container whose exit it could not observe). A removal that a
// crash interrupted is finished, and AutoRemove containers that exited
// meanwhile are removed.
package containers
