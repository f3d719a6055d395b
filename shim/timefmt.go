package shim

import "time"

// appendRFC3339 appends t in UTC as time.RFC3339Nano formats it
// ("2006-01-02T15:04:05.999999999Z": trailing zeros of the fraction
// dropped) or, with millis, as "2006-01-02T15:04:05.000Z". It does not use
// time's Format, whose code and time zone machinery would otherwise be
// mapped into every shim (see wire.go).
func appendRFC3339(b []byte, t time.Time, millis bool) []byte {
	secs := t.Unix()
	days := secs / 86400
	rem := secs % 86400
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
	pad := func(b []byte, v int64, width int) []byte {
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
	if y < 0 {
		b = append(b, '-')
		y = -y
	}
	b = pad(b, y, 4)
	b = append(b, '-')
	b = pad(b, m, 2)
	b = append(b, '-')
	b = pad(b, d, 2)
	b = append(b, 'T')
	b = pad(b, rem/3600, 2)
	b = append(b, ':')
	b = pad(b, rem%3600/60, 2)
	b = append(b, ':')
	b = pad(b, rem%60, 2)
	ns := int64(t.Nanosecond())
	switch {
	case millis:
		b = append(b, '.')
		b = pad(b, ns/1e6, 3)
	case ns != 0:
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = pad(b, ns, digits)
	}
	return append(b, 'Z')
}

// after returns a channel that is closed after d: time.After without its
// chan time.Time, which (passed to the runtime as an interface) would link
// time's formatting and time zone code into the shim (see wire.go). The
// timer is not stopped; it only closes a channel.
func after(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
