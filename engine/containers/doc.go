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
//	<State>/netns/<id>                          its network namespace while it runs (engine/network;
//	                                            set up before the runtime's create, torn down in
//	                                            dropShim: see network.go)
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
// container if it was created with AutoRemove. (A container's restart
// policy is applied there too: see "Restart policies".) Starting an exited
// container spawns a fresh shim on the same bundle and snapshot; the log is
// appended to. The status words are docker's (see the Status constants);
// an operation not allowed in the current status fails with a
// *StateError, of class errdefs.ErrFailedPrecondition.
//
// # Processes
//
// Exec runs a process in a running container through its shim (the
// runtime's exec), which owns it: it survives the engine, and outlives a
// client that goes away. Pause and Unpause freeze and thaw the container
// through the shim, which reports "paused". Update changes resources with
// the runtime's update and keeps them in the spec for the next start; Top
// uses the runtime's ps and the host's ps; Stats the runtime's events
// --stats.
//
// # Restart policies
//
// When a container exits, its watcher applies its policy as docker's
// restart manager does: always and unless-stopped restart it, on-failure
// if its exit code is not 0 and fewer than MaxRetries restarts were made
// (0: no limit); a user's stop (or kill with SIGKILL or the stop signal)
// leaves it stopped. The container is "restarting" during the backoff
// (100ms, doubling, at most a minute, back to 100ms after 10 seconds of
// running); each restart counts in RestartCount, which a user's start
// resets. When the engine starts, Recover applies the policies to the
// containers that are not running: always starts even one a user stopped
// (docker's rule), unless-stopped does not.
//
// # Files: cp, export, commit
//
// CopyTo, CopyFrom and Export reach a container's files, running or not,
// from a private mount namespace of one thread (fsview.go) where its root
// filesystem is mounted (its snapshot mounted for the occasion if need
// be) with its binds and volumes over it; every path is resolved inside
// that root, and everything mounted there goes with the thread. Commit
// reads the overlayfs upper directory of the writable snapshot as a layer
// (image/archive) and hands it to an ImageCommitter (commit.go).
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
