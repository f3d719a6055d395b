//go:debug netdns=go

package main

// skiff-runtime is linked statically (glibc and libseccomp included): the
// binary starts twice per container (the runtime, then the container's
// init), and the dynamic loader's work (mapping libc and libseccomp,
// relocating them) costs about 70 page faults and 4 ms of CPU each time on
// a VM where a fault costs ~30 µs.
//
// A static glibc cannot load NSS modules: nothing here may use them. The
// binary reads /etc/passwd itself (as runc does) instead of os/user, talks
// to unix sockets with raw syscalls, and resolves no host names. Package net
// is still linked (pflag parses IP flags with it), and with it cgo's
// getaddrinfo, which the linker would warn about: the wrap below replaces
// that unreachable call with a failure, and netdns=go keeps Go's own
// resolver in charge should a lookup ever happen.

// #cgo LDFLAGS: -static -Wl,--wrap=getaddrinfo
// #include <netdb.h>
// int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
// {
// 	return EAI_FAIL;
// }
import "C"
