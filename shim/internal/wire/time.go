package wire

import (
	"syscall"
	"unsafe"
)

// Now returns the wall clock time (CLOCK_REALTIME) as seconds and
// nanoseconds since the Unix epoch.
func Now() (sec int64, nsec int) {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 0 /* CLOCK_REALTIME */, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec, int(ts.Nsec)
}

// AppendRFC3339 appends the time sec.nsec (since the Unix epoch) in UTC
// as time.RFC3339Nano formats it ("2006-01-02T15:04:05.999999999Z":
// trailing zeros of the fraction dropped) or, with millis, as
// "2006-01-02T15:04:05.000Z".
func AppendRFC3339(b []byte, sec int64, nsec int, millis bool) []byte {
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	if y < 0 {
		b = append(b, '-')
		y = -y
	}
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	b = appendPadded(b, m, 2)
	b = append(b, '-')
	b = appendPadded(b, d, 2)
	b = append(b, 'T')
	b = appendPadded(b, rem/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, rem%3600/60, 2)
	b = append(b, ':')
	b = appendPadded(b, rem%60, 2)
	ns := int64(nsec)
	switch {
	case millis:
		b = append(b, '.')
		b = appendPadded(b, ns/1e6, 3)
	case ns != 0:
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendPadded(b, ns, digits)
	}
	return append(b, 'Z')
}

// appendPadded appends v (not negative) in decimal, with leading zeros to
// at least width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v > 0 || width > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(b, buf[i:]...)
}
