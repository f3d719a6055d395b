// Package imagearchive owns reading and writing image archives — OCI image
// layout tarballs and `docker save` tarballs — to and from a content store.
// It must not unpack layers or run anything: layers are stored as the bytes
// the archive holds.
//
// Import reads one tar stream, once, in whatever order its entries come:
//
//   - blobs/<algorithm>/<hex> entries are written to the store with that
//     digest (and the entry's size) as the expected descriptor, so a blob
//     whose bytes do not match its name is refused (ErrInvalidArgument, the
//     entry named) and never becomes visible. A blob the store already has is
//     still hashed, so a lying archive is refused all the same.
//   - index.json, oci-layout, manifest.json and repositories are kept in
//     memory, bounded by MaxMetadataSize.
//   - any other regular file (a docker archive's config and layer tars) is
//     kept in memory if small, otherwise written to the store under the digest
//     its bytes hash to; only the files a manifest.json names are used.
//
// Entry names that are absolute or contain a ".." component, hardlinks,
// device nodes and FIFOs are refused (ErrInvalidArgument). Nothing is ever
// written outside the content store. Symlinks are never created; because
// `docker save` and skopeo's docker-archive write `<id>/layer.tar` as a
// symlink to a layer elsewhere in the archive, a symlink entry outside blobs/
// is recorded as an alias for another entry of the same archive, and refused
// if its target is absolute or climbs out of the archive.
//
// Then, if index.json is present the archive is read as an OCI image layout
// (a docker ≥ 25 archive has both and is read this way); otherwise
// manifest.json is read as a docker save archive, and a Docker schema2
// manifest (application/vnd.docker.distribution.manifest.v2+json) is
// synthesised for each of its images. Uncompressed docker layers
// (application/vnd.docker.image.rootfs.diff.tar) must hash to the config's
// rootfs.diff_ids. Every image is checked to be complete — each blob
// reachable from its target present in the store with the size its
// descriptor gives — before Import returns it.
//
// Import is all or nothing as to the images it returns: on error it returns
// none. Blobs that were verified and committed before the error stay in the
// store (content-addressed, unreferenced; a garbage collection reclaims them).
//
// Export writes the images' targets and every blob reachable from them
// (index → manifests → config and layers) as an OCI archive whose index.json
// names each image with io.containerd.image.name (the full reference) and
// org.opencontainers.image.ref.name (its tag).
package imagearchive
