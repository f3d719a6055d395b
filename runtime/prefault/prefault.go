// Package prefault makes the Go heap's next pages present before the
// process touches them: on the VMs skiff runs on, a page fault costs about
// 20 µs, and a short-lived runtime process takes a few hundred of them
// (the Go allocator gives every size class a fresh span, and each fresh
// page is a fault), where madvise(MADV_POPULATE_WRITE) populates a page for
// about 1.5 µs. Importing the package is all it takes: its init runs before
// most other packages' (it depends on nothing but syscall), finds where the
// heap has reached in its mapping (/proc/self/maps and mincore(2)) and
// populates from its first page to 1 MiB past the last one in use, which
// covers what skiff-runtime allocates in a `run` or `exec` (a few hundred
// KiB spread over many spans) at the cost of about that much more resident
// memory.
//
// It must not allocate more than a probe object, nor fail: on any error
// (no /proc, a kernel before 5.14) it does nothing.
package prefault

import (
	"syscall"
	"unsafe"
)

// Window is how far past the heap's last page in use to populate.
const Window = 1 << 20

const pageSize = 4096

var probe *[16]byte

func init() {
	probe = new([16]byte)
	Heap(Window)
}

// Heap populates the Go heap from the first page in use in the mapping that
// holds it to after bytes past the last.
func Heap(after uintptr) {
	addr := uintptr(unsafe.Pointer(probe))
	lo, hi, ok := mappingOf(addr)
	if !ok {
		return
	}
	// Small buffers: this runs on the main goroutine's first stack, which
	// must not grow (a bigger stack is fresh memory too).
	var vec [256]byte
	first, last := uintptr(0), uintptr(0)
	found := false
	for base := lo; base < hi; base += uintptr(len(vec)) * pageSize {
		size := min(hi-base, uintptr(len(vec))*pageSize)
		if _, _, e := syscall.RawSyscall(syscall.SYS_MINCORE, base, size, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return
		}
		for i := uintptr(0); i < size/pageSize; i++ {
			if vec[i]&1 != 0 {
				if !found {
					first, found = base+i*pageSize, true
				}
				last = base + i*pageSize
			}
		}
	}
	if !found {
		return
	}
	start := first
	end := min(hi, last+pageSize+after)
	const madvPopulateWrite = 23 // MADV_POPULATE_WRITE, Linux 5.14
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite)
}

// mappingOf returns the bounds of the private writable mapping holding
// addr, from /proc/self/maps.
func mappingOf(addr uintptr) (lo, hi uintptr, ok bool) {
	path := [...]byte{'/', 'p', 'r', 'o', 'c', '/', 's', 'e', 'l', 'f', '/', 'm', 'a', 'p', 's', 0}
	fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return 0, 0, false
	}
	defer syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	// Lines: "lo-hi perms offset dev inode path", read in chunks; a line
	// cut at the end of one is read again at the start of the next.
	var buf [1024]byte
	n := 0
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
		if e != 0 || m == 0 {
			return 0, 0, false
		}
		n += int(m)
		i := 0
		for {
			j := i
			for j < n && buf[j] != '\n' {
				j++
			}
			if j == n {
				break
			}
			line := buf[i:j]
			i = j + 1
			l, k := hex(line, 0)
			if k >= len(line) || line[k] != '-' {
				continue
			}
			h, k2 := hex(line, k+1)
			if k2+3 > len(line) || line[k2] != ' ' || l > addr || addr >= h {
				continue
			}
			if line[k2+1] != 'r' || line[k2+2] != 'w' {
				return 0, 0, false
			}
			return l, h, true
		}
		if i == 0 {
			return 0, 0, false // a line longer than the buffer
		}
		n = copy(buf[:], buf[i:n])
	}
}

var atFDCWD = -100

func hex(b []byte, i int) (uintptr, int) {
	var v uintptr
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uintptr(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uintptr(c-'a'+10)
		default:
			return v, i
		}
	}
	return v, i
}
