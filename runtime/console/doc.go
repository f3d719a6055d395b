// Package console owns the pseudo-terminals of containers whose
// process.terminal is true: allocating the pty inside the container (Setup,
// in the init), handing its master to a console socket (Connect in the
// parent, SendMaster/ReceiveMaster for the SCM_RIGHTS exchange), and relaying
// a master to the caller's own terminal for `run` without --console-socket
// (Relay). It must not create namespaces, nor set up any mount other than the
// bind of the pty over /dev/console.
//
// Behaviour follows runc 1.1:
//
//   - the pty comes from the container's devpts instance, through the
//     container's /dev/ptmx (normally a symlink to pts/ptmx); it is sized to
//     process.consoleSize when both dimensions are non-zero;
//   - the slave is bind-mounted over /dev/console (created as an empty file
//     when missing), so /dev/console shows as a devpts mount of "/N";
//   - the slave becomes fds 0, 1 and 2 and the controlling terminal of a new
//     session; its owner becomes the process's uid (runc's
//     fixStdioPermissions), its group is left to the devpts mount's gid=;
//   - the master travels as one SCM_RIGHTS message whose payload is the name
//     "/dev/ptmx", which runc's recvtty, containerd's go-runc and conmon
//     accept;
//   - on the caller's side (Relay) the terminal is put in raw mode with
//     output processing kept (containerd/console's SetRaw), ONLCR is cleared
//     on the container's pty as runc's recvtty does, the container's window
//     follows the caller's (at start and on SIGWINCH), and the caller's mode
//     is restored on return.
package console
