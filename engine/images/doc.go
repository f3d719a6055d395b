// Package images is skiffd's image service: it pulls images from registries,
// unpacks their layers into snapshots, records them per namespace, looks
// them up by name, short name or id, tags, removes, loads and saves them,
// and collects the blobs and layer snapshots nothing uses any more.
//
// It owns the image records of engine/metadata, the committed layer
// snapshots (named by their chain ID, "sha256:…") and the temporary
// snapshots it extracts layers into ("images/extract/<random>/<chain ID>"),
// the leases it takes while a pull or load is in progress, and the blobs of
// the content store. It builds on the libraries under image/ (reference,
// remote, content, archive, snapshot, imagearchive) and does not bypass
// their checks of untrusted input.
//
// It must not create, start or remove containers, nor touch their active
// snapshots: a container's snapshot is prepared by the containers service on
// top of the ChainID that Resolve returns, and garbage collection keeps
// every snapshot that is an ancestor of a snapshot it did not make.
//
// Nothing half-made stays behind: a pull or load records its images only
// when every blob is stored and every layer unpacked; until then a lease
// names what it has made, and on failure the lease is dropped and a garbage
// collection removes the blobs and snapshots no image references. Verified
// blobs of a failed pull are therefore not kept for a retry.
//
// Garbage collection and operations that create not-yet-referenced content
// (pull, load, unpack) exclude each other with a lock of the Service: GC
// waits for running pulls to finish. One Service (one skiffd) uses a given
// metadata database, content store and snapshotter at a time; New removes
// the leases and temporary snapshots a previous process left behind.
package images
