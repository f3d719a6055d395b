package remote

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
)

// DefaultPlatform returns the platform of this host, normalised: the OS
// and architecture skiff was built for, with the default variant of that
// architecture (v8 for arm64; v7 for arm, which is what docker assumes
// without probing the CPU).
func DefaultPlatform() ocispec.Platform {
	return NormalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// ParsePlatform parses "os/arch[/variant]" (as `--platform` takes it), or
// just "arch" (Linux assumed), and normalises it.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	}
	for _, part := range parts {
		if part == "" || len(parts) > 3 {
			return ocispec.Platform{}, fmt.Errorf("%w: platform %q: want os/arch[/variant], such as linux/amd64 or linux/arm/v7", errdefs.ErrInvalidArgument, s)
		}
	}
	return NormalizePlatform(p), nil
}

// FormatPlatform renders p as "os/arch[/variant]".
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// NormalizePlatform folds the spellings of architectures and variants into
// the ones image indexes use (x86_64 → amd64, aarch64 → arm64/v8, armhf →
// arm/v7, amd64/v1 → amd64).
func NormalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "i386", "i486", "i586", "i686":
		p.Architecture, p.Variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "" || p.Variant == "8" {
			p.Variant = "v8"
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p
}

// variantLevel orders the variants of arm and amd64: a host of level n runs
// images of any level up to n. Unknown variants have no level.
func variantLevel(arch, variant string) (int, bool) {
	switch arch {
	case "arm":
		switch variant {
		case "v5":
			return 5, true
		case "v6":
			return 6, true
		case "v7":
			return 7, true
		case "v8":
			return 8, true
		}
	case "amd64":
		switch variant {
		case "":
			return 1, true
		case "v2":
			return 2, true
		case "v3":
			return 3, true
		case "v4":
			return 4, true
		}
	}
	return 0, false
}

// matchScore says how well an image's platform have suits the host
// platform want: 0 means it cannot run; higher is better (the exact
// variant beats an older compatible one).
func matchScore(want, have ocispec.Platform) int {
	want, have = NormalizePlatform(want), NormalizePlatform(have)
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return 0
	}
	if want.Variant == have.Variant {
		return 100
	}
	wl, wok := variantLevel(want.Architecture, want.Variant)
	hl, hok := variantLevel(have.Architecture, have.Variant)
	if wok && hok && hl <= wl {
		return 10 + hl
	}
	return 0
}

// SelectManifest picks, from an image index's manifests, the one for
// platform want: exact variant first, then the newest compatible variant
// (an arm/v7 host takes arm/v6 if there is no arm/v7). Entries without a
// platform are skipped (they are attestations and the like). When nothing
// fits, the error is ErrNotFound and lists the platforms available.
func SelectManifest(manifests []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, error) {
	type cand struct {
		d     ocispec.Descriptor
		score int
		i     int
	}
	var cands []cand
	var avail []string
	for i, d := range manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.OS != "unknown" {
			avail = append(avail, FormatPlatform(NormalizePlatform(*d.Platform)))
		}
		if s := matchScore(want, *d.Platform); s > 0 {
			cands = append(cands, cand{d, s, i})
		}
	}
	if len(cands) == 0 {
		list := "none"
		if len(avail) > 0 {
			list = strings.Join(avail, ", ")
		}
		return ocispec.Descriptor{}, fmt.Errorf("%w: no manifest for platform %s (the image has: %s); choose one of those with --platform", errdefs.ErrNotFound, FormatPlatform(NormalizePlatform(want)), list)
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
	return cands[0].d, nil
}
