// Package network is skiffd's container networking: CNI networks (libcni
// driving the standard plugin binaries: bridge, host-local, portmap,
// loopback, and firewall for networks made before skiffd owned their
// forwarding rules), each network's masquerade and FORWARD rules
// (hostrules.go), and the attachment of containers to them.
//
// It owns, per network, a conflist under <Root>/networks/<name>.conflist
// (the file is the network's record: skiff's own fields, id, subnet,
// labels, creation time, ride in it under the key "skiff", which libcni
// ignores), and, per container, a network namespace bind-mounted at
// <State>/netns/<id>, an attachment record <State>/cni/attachments/<id>.json
// naming the endpoints and published ports, libcni's result cache
// (<State>/cni/cache) and the host-local leases (<State>/cni/ipam). All of
// the per-container state is volatile, as the veths and iptables rules it
// describes are: a reboot loses them together.
//
// The attachment record is written before each CNI ADD, so that a crash at
// any point leaves enough behind for Teardown to DEL what may have been
// added; DEL is idempotent. Name resolution on user-defined networks is an
// /etc/hosts kept current: each container's hosts file (the one the engine
// bind-mounts into it) lists the other containers on its user networks by
// name, aliases and short id, and is rewritten in place (the bind mount
// holds the inode) whenever a container joins or leaves. The default
// network, as docker's default bridge, has no name resolution.
//
// It must not know containers beyond their ids and names: engine/containers
// decides when to set up and tear down, and keeps the configuration.
package network
