// Package reference parses and normalises image references the way docker
// does: "busybox" means "docker.io/library/busybox:latest", a name may carry
// a tag, a digest or both, and everything is validated against the grammar
// of github.com/distribution/reference before a registry is ever contacted.
//
// It knows nothing of registries' transport or of stored images; it only
// turns a user's string into a checked, canonical Reference.
package reference

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/skiff-containers/skiff/errdefs"
)

const (
	// DefaultDomain is the registry a name without a domain refers to.
	DefaultDomain = "docker.io"
	// LegacyDefaultDomain is docker's old spelling of DefaultDomain; it is
	// rewritten to DefaultDomain when parsing.
	LegacyDefaultDomain = "index.docker.io"
	// OfficialRepoPrefix is prepended to single-component names on
	// DefaultDomain ("busybox" → "library/busybox").
	OfficialRepoPrefix = "library/"
	// DefaultTag is the tag a name without tag or digest refers to.
	DefaultTag = "latest"
	// NameTotalLengthMax is the longest a repository name (domain and
	// path) may be.
	NameTotalLengthMax = 255
)

// The grammar, from github.com/distribution/reference (regexp.go). The
// compiled expressions are never modified after initialisation.
const (
	alphanumeric    = `[a-z0-9]+`
	separator       = `(?:[._]|__|[-]+)`
	pathComponent   = alphanumeric + `(?:` + separator + alphanumeric + `)*`
	domainNameComp  = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainName      = domainNameComp + `(?:\.` + domainNameComp + `)*`
	ipv6address     = `\[(?:[a-fA-F0-9:]+)\]`
	host            = `(?:` + domainName + `|` + ipv6address + `)`
	optionalPort    = `(?::[0-9]+)?`
	domainAndPort   = host + optionalPort
	tagPat          = `[\w][\w.-]{0,127}`
	digestPat       = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	identifierPat   = `[a-f0-9]{64}`
	remoteNamePat   = pathComponent + `(?:/` + pathComponent + `)*`
	namePat         = `(?:` + domainAndPort + `/)?` + remoteNamePat
	referencePatStr = `^(` + namePat + `)(?::(` + tagPat + `))?(?:@(` + digestPat + `))?$`
)

var (
	referenceRegexp  = regexp.MustCompile(referencePatStr)
	domainRegexp     = regexp.MustCompile(`^` + domainAndPort + `$`)
	remoteNameRegexp = regexp.MustCompile(`^` + remoteNamePat + `$`)
	tagRegexp        = regexp.MustCompile(`^` + tagPat + `$`)
	identifierRegexp = regexp.MustCompile(`^` + identifierPat + `$`)
)

// Reference is a parsed, normalised image reference. Domain and Path are
// always set; Tag, Digest or both may be. The zero value is not valid.
type Reference struct {
	// Domain is the registry host, with an optional port ("docker.io",
	// "localhost:5000", "[::1]:5000").
	Domain string
	// Path is the repository path inside the registry
	// ("library/busybox").
	Path string
	// Tag is the tag, if any ("latest").
	Tag string
	// Digest is the manifest digest, if any. When a reference has both,
	// the digest is what a pull fetches; the tag is informational.
	Digest digest.Digest
}

// Parse parses s as a fully qualified reference: no domain or tag is
// added, and s must already be in canonical form (so "busybox" is
// refused, "docker.io/library/busybox" is accepted). Use ParseNormalized
// for user input.
func Parse(s string) (Reference, error) {
	r, err := parse(s)
	if err != nil {
		return Reference{}, err
	}
	if r.Name() != nameOf(s) {
		return Reference{}, fmt.Errorf("%w: reference %q is not in canonical form (expected %q)", errdefs.ErrInvalidArgument, s, r.String())
	}
	return r, nil
}

// nameOf returns the name part of a reference string: everything before
// the tag or digest.
func nameOf(s string) string {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "/") {
		s = s[:i]
	}
	return s
}

// ParseNormalized parses a reference the way `docker pull` reads one:
// the domain defaults to docker.io, single-component names on docker.io
// get "library/", and no tag is added (see ParseDockerRef for that).
func ParseNormalized(s string) (Reference, error) {
	return parse(s)
}

// ParseDockerRef is ParseNormalized followed by the default tag: a
// reference with neither tag nor digest gets ":latest". It is what a pull
// or run of a user-typed name uses.
func ParseDockerRef(s string) (Reference, error) {
	r, err := parse(s)
	if err != nil {
		return Reference{}, err
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

func parse(s string) (Reference, error) {
	invalid := func(why string) error {
		return fmt.Errorf("%w: invalid reference %q: %s", errdefs.ErrInvalidArgument, s, why)
	}
	if s == "" {
		return Reference{}, invalid("empty reference; give an image name such as busybox or registry.example.com/team/app:1.0")
	}
	if identifierRegexp.MatchString(s) {
		return Reference{}, invalid("a 64-character hexadecimal string is an image ID, not a name; use sha256:<hex> with an image-ID aware command, or name@sha256:<hex> to pull by digest")
	}
	m := referenceRegexp.FindStringSubmatch(s)
	if m == nil {
		return Reference{}, invalid(explain(s))
	}
	name, tag, dgst := m[1], m[2], m[3]
	domain, path := splitDomain(name)
	if strings.ToLower(path) != path {
		return Reference{}, invalid("repository name must be lowercase")
	}
	if len(domain)+1+len(path) > NameTotalLengthMax {
		return Reference{}, invalid(fmt.Sprintf("repository name is longer than %d characters", NameTotalLengthMax))
	}
	r := Reference{Domain: domain, Path: path, Tag: tag}
	if dgst != "" {
		d, err := digest.Parse(dgst)
		if err != nil {
			return Reference{}, invalid(fmt.Sprintf("digest %q: %v", dgst, err))
		}
		r.Digest = d
	}
	return r, nil
}

// explain says, as precisely as it cheaply can, why s does not match the
// reference grammar.
func explain(s string) string {
	name := s
	var tag, dgst string
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name, dgst = name[:i], name[i+1:]
		if dgst == "" {
			return "empty digest after '@'"
		}
		if _, err := digest.Parse(dgst); err != nil {
			return fmt.Sprintf("digest %q is malformed (want algorithm:hex, e.g. sha256:<64 hex digits>)", dgst)
		}
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "/") {
		name, tag = name[:i], name[i+1:]
		if !tagRegexp.MatchString(tag) {
			return fmt.Sprintf("tag %q is malformed (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')", tag)
		}
	}
	if name == "" {
		return "empty repository name"
	}
	domain, path := splitDomain(name)
	if domain != DefaultDomain || strings.HasPrefix(name, DefaultDomain+"/") {
		if !domainRegexp.MatchString(domain) {
			return fmt.Sprintf("registry %q is not a valid host[:port]", domain)
		}
	}
	if strings.ToLower(path) != path {
		return "repository name must be lowercase"
	}
	if !remoteNameRegexp.MatchString(path) {
		return fmt.Sprintf("repository path %q is malformed (lowercase letters, digits and separators '.', '_', '__', '-' between them, components joined by '/')", path)
	}
	return "does not match the reference format [registry[:port]/]path[:tag][@digest]"
}

// splitDomain splits a name into its registry domain and repository path,
// applying docker's defaults. The first component is a domain only if it
// contains '.' or ':', is "localhost", or has uppercase letters.
func splitDomain(name string) (domain, path string) {
	i := strings.IndexByte(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		domain, path = DefaultDomain, name
	} else {
		domain, path = name[:i], name[i+1:]
	}
	if domain == LegacyDefaultDomain {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.ContainsRune(path, '/') {
		path = OfficialRepoPrefix + path
	}
	return domain, path
}

// Name returns the repository name: domain and path
// ("docker.io/library/busybox").
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String returns the canonical form: name, ":tag" if any, "@digest" if
// any ("docker.io/library/busybox:latest").
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar returns the short form docker shows: without "docker.io/" and
// "library/" ("busybox:latest", "user/app:1", "ghcr.io/o/x@sha256:…").
func (r Reference) Familiar() string {
	name := r.Name()
	if r.Domain == DefaultDomain {
		name = strings.TrimPrefix(r.Path, OfficialRepoPrefix)
		if strings.Contains(name, "/") && strings.HasPrefix(r.Path, OfficialRepoPrefix) {
			// library/a/b stays qualified: it is not an official image.
			name = r.Path
		}
	}
	s := name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Object returns what a registry's manifest endpoint takes for this
// reference: the digest if there is one, else the tag ("" if neither).
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithDigest returns a copy of r pinned to d, keeping its tag.
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}

// IsZero reports whether r is the zero Reference.
func (r Reference) IsZero() bool { return r.Domain == "" && r.Path == "" }

// ValidateTag reports whether tag is a valid tag.
func ValidateTag(tag string) error {
	if !tagRegexp.MatchString(tag) {
		return fmt.Errorf("%w: invalid tag %q: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'", errdefs.ErrInvalidArgument, tag)
	}
	return nil
}
