package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/skiff-containers/skiff/errdefs"
)

// Compression names how a layer stream is compressed.
type Compression int

const (
	// Auto detects the compression from the stream's first bytes (gzip,
	// zstd, bzip2, or none).
	Auto Compression = iota
	// Uncompressed is a plain tar stream.
	Uncompressed
	// Gzip is a gzip stream (media types ending in "+gzip" or ".gzip").
	Gzip
	// Zstd is a zstd stream (media types ending in "+zstd").
	Zstd
	// Bzip2 is a bzip2 stream (old docker-archive layers).
	Bzip2
)

// String returns the compression's name.
func (c Compression) String() string {
	switch c {
	case Auto:
		return "auto"
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Bzip2:
		return "bzip2"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

var (
	magicGzip  = []byte{0x1f, 0x8b, 0x08}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte{'B', 'Z', 'h'}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// zstdMaxWindow bounds the memory a zstd frame may make the decoder use
// (128 MiB, the largest window `zstd --long` writes by default).
const zstdMaxWindow = 1 << 27

// DetectCompression reports the compression of a stream from its first
// bytes (at least 6 are needed to tell every format apart; fewer give
// Uncompressed). xz streams are reported as an ErrNotImplemented error.
func DetectCompression(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip, nil
	case bytes.HasPrefix(head, magicZstd):
		return Zstd, nil
	case bytes.HasPrefix(head, magicBzip2):
		return Bzip2, nil
	case bytes.HasPrefix(head, magicXz):
		return Uncompressed, fmt.Errorf("%w: xz-compressed layers are not supported; recompress the layer with gzip or zstd", errdefs.ErrNotImplemented)
	}
	return Uncompressed, nil
}

// decompress returns the tar stream inside r and a function releasing the
// decoder's resources.
func decompress(r io.Reader, c Compression) (io.Reader, func(), error) {
	if c == Auto {
		br := bufio.NewReaderSize(r, 64<<10)
		head, err := br.Peek(len(magicXz))
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return nil, nil, err
		}
		if c, err = DetectCompression(head); err != nil {
			return nil, nil, err
		}
		r = br
	}
	switch c {
	case Uncompressed:
		return r, func() {}, nil
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad gzip header: %v", errdefs.ErrInvalidArgument, err)
		}
		return zr, func() { zr.Close() }, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad zstd stream: %v", errdefs.ErrInvalidArgument, err)
		}
		return zr, zr.Close, nil
	case Bzip2:
		return bzip2.NewReader(r), func() {}, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown compression %v", errdefs.ErrInvalidArgument, c)
}
