package seccomp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/internal/ljson"
)

// binaryMagic starts a marshalled Filter; the digit is the format version.
const binaryMagic = "SKSECC1\x00"

// MarshalBinary encodes the compiled filter, so that it can be handed to
// another process (the container's init) or cached, and installed there
// without libseccomp.
func (f *Filter) MarshalBinary() ([]byte, error) {
	b := []byte(binaryMagic)
	if f == nil || f.prog == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(f.prog.flags))
	notify := byte(0)
	if f.prog.notify {
		notify = 1
	}
	b = append(b, notify)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.prog.insns)))
	for _, in := range f.prog.insns {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (f *Filter) UnmarshalBinary(b []byte) error {
	bad := func(why string) error {
		return fmt.Errorf("seccomp: compiled filter is malformed (%s): %w", why, errdefs.ErrInvalidArgument)
	}
	if len(b) < len(binaryMagic)+1 || string(b[:len(binaryMagic)]) != binaryMagic {
		return bad("bad header")
	}
	b = b[len(binaryMagic):]
	if b[0] == 0 {
		f.prog = nil
		return nil
	}
	b = b[1:]
	if len(b) < 8+1+4 {
		return bad("truncated")
	}
	p := &program{flags: uintptr(binary.LittleEndian.Uint64(b)), notify: b[8] == 1}
	n := int(binary.LittleEndian.Uint32(b[9:]))
	b = b[13:]
	// The kernel takes at most BPF_MAXINSNS (4096) instructions.
	if n == 0 || n > 4096 || len(b) != n*8 {
		return bad("instruction count")
	}
	p.insns = make([]unix.SockFilter, n)
	for i := range p.insns {
		r := b[i*8:]
		p.insns[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(r), Jt: r[2], Jf: r[3], K: binary.LittleEndian.Uint32(r[4:])}
	}
	f.prog = p
	return nil
}

// CacheKey names the compiled form of cfg on this host: the profile, the
// libseccomp library that compiles it, the kernel (the ENOSYS stub depends
// on it) and the architecture. Filters with the same key are the same
// program.
func CacheKey(cfg *specs.LinuxSeccomp) (string, error) {
	js, err := ljson.Marshal(cfg)
	if err != nil {
		return "", err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	maj, min, mic := libseccomp.GetLibraryVersion()
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d.%d.%d\n%s\n%s\n", binaryMagic, maj, min, mic, unix.ByteSliceToString(uts.Release[:]), runtime.GOARCH)
	h.Write(js)
	return hex.EncodeToString(h.Sum(nil)), nil
}
