package devices

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// The bpf_attr variants used, laid out as the kernel's union members (64-bit
// only). Pointers are unsafe.Pointer so the garbage collector and stack
// copying see them; the kernel reads them as __aligned_u64.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              unsafe.Pointer
	license            unsafe.Pointer
	logLevel           uint32
	logSize            uint32
	logBuf             unsafe.Pointer
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type attachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
}

type queryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     unsafe.Pointer
	progCnt     uint32
	_           uint32
}

type getFDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// load loads p as a cgroup device program and returns its fd.
func load(p Program) (int, error) {
	insns := p.Bytes()
	license := []byte("Apache\x00")
	logBuf := make([]byte, 1<<16)
	a := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(p)),
		insns:    unsafe.Pointer(&insns[0]),
		license:  unsafe.Pointer(&license[0]),
		logLevel: 1,
		logSize:  uint32(len(logBuf)),
		logBuf:   unsafe.Pointer(&logBuf[0]),
	}
	copy(a.progName[:], "skiff_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if err != nil {
		log := string(logBuf)
		if i := strings.IndexByte(log, 0); i >= 0 {
			log = log[:i]
		}
		return -1, fmt.Errorf("load the device filter into the kernel: %w (verifier: %s)", err, strings.TrimSpace(log))
	}
	return fd, nil
}

// attached lists the ids of device programs attached to the cgroup.
func attached(cgFD int) ([]uint32, error) {
	ids := make([]uint32, 64)
	a := queryAttr{
		targetFD:   uint32(cgFD),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIDs:    unsafe.Pointer(&ids[0]),
		progCnt:    uint32(len(ids)),
	}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, err
	}
	return ids[:a.progCnt], nil
}

func progFD(id uint32) (int, error) {
	a := getFDAttr{id: id}
	return bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&a), unsafe.Sizeof(a))
}

func attach(cgFD, progFD int, flags uint32) error {
	a := attachAttr{targetFD: uint32(cgFD), attachBPFFD: uint32(progFD), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: flags}
	_, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}

func detach(cgFD, progFD int) error {
	a := attachAttr{targetFD: uint32(cgFD), attachBPFFD: uint32(progFD), attachType: unix.BPF_CGROUP_DEVICE}
	_, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}

// Attach loads p and attaches it to the cgroup v2 directory dir, replacing
// device programs attached there before (a later `update` calls it again).
func Attach(dir string, p Program) error {
	if len(p) == 0 {
		return fmt.Errorf("attach device filter to %s: empty program: %w", dir, errdefs.ErrInvalidArgument)
	}
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("attach device filter: open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cg)
	old, err := attached(cg)
	if err != nil {
		return fmt.Errorf("attach device filter: query the programs attached to %s (is it a cgroup v2 directory?): %w", dir, err)
	}
	prog, err := load(p)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("attach device filter to %s: %w (needs CAP_BPF/CAP_SYS_ADMIN): %w", dir, err, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("attach device filter to %s: %w", dir, err)
	}
	defer unix.Close(prog)
	if err := attach(cg, prog, unix.BPF_F_ALLOW_MULTI); err != nil {
		// An exclusive program is there (attached without ALLOW_MULTI):
		// attaching exclusively in turn replaces it.
		if err2 := attach(cg, prog, 0); err2 != nil {
			return fmt.Errorf("attach device filter to %s: %w (exclusive: %v)", dir, err, err2)
		}
		return nil
	}
	for _, id := range old {
		fd, err := progFD(id)
		if err != nil {
			continue // gone meanwhile
		}
		err = detach(cg, fd)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("attach device filter to %s: detach the previous filter (id %d): %w", dir, id, err)
		}
	}
	return nil
}

// Attached reports how many device programs are attached to dir.
func Attached(dir string) (int, error) {
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(cg)
	ids, err := attached(cg)
	return len(ids), err
}
