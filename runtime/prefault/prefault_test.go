package prefault

import (
	"reflect"
	"syscall"
	"testing"
	"unsafe"
)

func resident(t *testing.T, addr uintptr) bool {
	t.Helper()
	var vec [1]byte
	page := addr &^ (pageSize - 1)
	if _, _, e := syscall.RawSyscall(syscall.SYS_MINCORE, page, pageSize, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	return vec[0]&1 != 0
}

func TestMappingOfHeap(t *testing.T) {
	p := new([64]byte)
	lo, hi, ok := mappingOf(uintptr(unsafe.Pointer(p)))
	if !ok || lo > uintptr(unsafe.Pointer(p)) || uintptr(unsafe.Pointer(p)) >= hi {
		t.Fatalf("mappingOf(%p) = %#x-%#x, %v", p, lo, hi, ok)
	}
	if _, _, ok := mappingOf(reflect.ValueOf(Heap).Pointer()); ok {
		t.Errorf("code reported as a writable mapping")
	}
}

func TestHeapPopulatesPastTheLastPageInUse(t *testing.T) {
	lo, hi, ok := mappingOf(uintptr(unsafe.Pointer(probe)))
	if !ok {
		t.Skip("no /proc/self/maps")
	}
	// The last resident page of the heap's mapping, then populate.
	last := uintptr(0)
	for a := lo; a < hi; a += pageSize {
		if resident(t, a) {
			last = a
		}
	}
	Heap(8 * pageSize)
	if next := last + pageSize; next < hi && !resident(t, next) {
		t.Errorf("page %#x after the heap's last page in use %#x is not resident after Heap (kernel without MADV_POPULATE_WRITE?)", next, last)
	}
}
