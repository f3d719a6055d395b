package initproc

import "unsafe"

func unsafePointer(p *uint32) unsafe.Pointer { return unsafe.Pointer(p) }

func unsafePointerBytes(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
