package cli

import "strings"

// The CLI needs image names only for display and for choosing credentials;
// the daemon parses and validates them. These helpers follow docker's
// normalisation rules (busybox → docker.io/library/busybox:latest).

const (
	dockerDomain  = "docker.io"
	officialRepo  = "library/"
	defaultTag    = "latest"
	dockerHubAuth = "https://index.docker.io/v1/"
)

// splitDomain splits a name (without tag or digest) into its registry and
// repository path, docker's way: the first component is a registry when it
// has a dot or a colon or is "localhost".
func splitDomain(name string) (domain, path string) {
	i := strings.IndexRune(name, '/')
	if i < 0 || !strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i] {
		domain, path = dockerDomain, name
	} else {
		domain, path = name[:i], name[i+1:]
	}
	if domain == "index.docker.io" || domain == "registry-1.docker.io" {
		domain = dockerDomain
	}
	if domain == dockerDomain && !strings.ContainsRune(path, '/') {
		path = officialRepo + path
	}
	return domain, path
}

// splitRef splits a reference into name, tag and digest (each may be
// empty).
func splitRef(ref string) (name, tag, digest string) {
	if i := strings.IndexRune(ref, '@'); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.ContainsRune(ref[i+1:], '/') {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref, tag, digest
}

// normalizeRef returns the full form of ref: docker.io/library/busybox:latest.
// A reference with a digest gets no default tag.
func normalizeRef(ref string) string {
	name, tag, digest := splitRef(ref)
	domain, path := splitDomain(name)
	out := domain + "/" + path
	if tag == "" && digest == "" {
		tag = defaultTag
	}
	if tag != "" {
		out += ":" + tag
	}
	if digest != "" {
		out += "@" + digest
	}
	return out
}

// familiarRef returns the short form docker shows: docker.io/library/busybox
// → busybox, docker.io/x/y → x/y; other registries stay.
func familiarRef(ref string) string {
	name, tag, digest := splitRef(ref)
	domain, path := splitDomain(name)
	out := domain + "/" + path
	if domain == dockerDomain {
		out = strings.TrimPrefix(path, officialRepo)
		if strings.ContainsRune(out, '/') {
			out = path
		}
	}
	if tag != "" {
		out += ":" + tag
	}
	if digest != "" {
		out += "@" + digest
	}
	return out
}

// familiarWithTag is familiarRef with docker's default tag added when the
// reference has neither tag nor digest ("busybox" → "busybox:latest").
func familiarWithTag(ref string) string {
	return familiarRef(normalizeRef(ref))
}

// registryOf returns the registry host an image reference is pulled from.
func registryOf(ref string) string {
	name, _, _ := splitRef(ref)
	domain, _ := splitDomain(name)
	return domain
}

// repoAndTag splits a stored image name into the REPOSITORY and TAG
// columns of `images` ("<none>" when absent).
func repoAndTag(name string) (repo, tag, digest string) {
	n, t, d := splitRef(name)
	repo = familiarRef(n)
	if t == "" {
		t = "<none>"
	}
	return repo, t, d
}

// shortID is docker's 12-character id (without the "sha256:" prefix).
func shortID(id string) string {
	if i := strings.IndexRune(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
