// Package archive owns applying layer tarballs into a directory: the OCI
// image-spec layer format, compressed with gzip or zstd or not at all, with
// OCI/AUFS whiteouts turned either into the overlayfs form (for an overlay
// upper directory) or into deletions (for a directory that already holds
// the lower layers' files). It also writes tar streams of directory trees
// (WriteTree: for cp and export, and, from an overlayfs upper directory, a
// layer of a container's changes with OCI whiteouts), extracts plain
// archives (ApplyOptions.Plain), and holds docker cp's rules for where a
// copy goes (copy.go).
//
// Every tarball is untrusted input. Entry names are cleaned and confined to
// the target directory: absolute names are taken relative to it (as
// containerd and docker do), names whose ".." would climb above it are
// refused, the parents of an entry are resolved inside the directory (a
// symlink in the tree, whatever it points at, resolves within it), and the
// final component of a name is never followed. Hardlinks must name an entry
// already inside the directory; device nodes are created only when asked
// for. Refusals are errdefs.ErrInvalidArgument and name the entry.
//
// The package knows nothing of registries, content stores or snapshots.
package archive
