package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote"
)

// Import makes a one-layer image of the root filesystem tarball read from r
// (plain, gzip, zstd or bzip2), as `docker import` does: the layer is
// stored gzip-compressed, the configuration gets the host's platform,
// changes (Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
// STOPSIGNAL, USER, VOLUME, WORKDIR) and a history entry with message
// ("Imported from -" if empty). The image is unpacked and recorded in ns
// under ref, or under its id when ref is empty. All or nothing: on error
// nothing is recorded and what the import stored is collected.
func (s *Service) Import(ctx context.Context, ns string, r io.Reader, ref string, changes []string, message string) (Image, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	name := ""
	if ref != "" {
		pr, err := reference.ParseDockerRef(ref)
		if err != nil {
			return Image{}, fmt.Errorf("import: %w", err)
		}
		if pr.Digest != "" {
			return Image{}, fmt.Errorf("import as %q: the name cannot carry a digest; give name[:tag]: %w", ref, errdefs.ErrInvalidArgument)
		}
		name = pr.String()
	}
	cfg, err := ParseChanges(changes)
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	if message == "" {
		message = "Imported from -"
	}
	s.gate.RLock()
	l, err := s.newLease(ns, "import")
	if err != nil {
		s.gate.RUnlock()
		return Image{}, fmt.Errorf("import: %w", err)
	}
	rec, p, err := s.importImage(ctx, ns, r, name, cfg, message, l)
	s.gate.RUnlock()
	if err != nil {
		s.abandon(ctx, l, "import")
		return Image{}, fmt.Errorf("import: %w", err)
	}
	if err := l.release(); err != nil {
		s.log.Warn("cannot remove import lease", "lease", l.id, "error", err)
	}
	img := s.describe(ctx, rec, p)
	s.log.Info("imported image", "namespace", ns, "image", img.Name, "id", img.ID)
	s.publish(ctx, ns, evImport, img.ID.String(), familiar(img.Name), img.Labels)
	return img, nil
}

func (s *Service) importImage(ctx context.Context, ns string, r io.Reader, name string, cfg ocispec.ImageConfig, message string, l *lease) (metadata.Image, *parts, error) {
	layer, diffID, err := s.importLayer(ctx, r, l)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	plat := remote.DefaultPlatform()
	img := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: plat.OS, Architecture: plat.Architecture, Variant: plat.Variant},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []ocispec.History{{Created: &now, Comment: message}},
	}
	cdata, err := json.Marshal(img)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	return s.storeImage(ctx, ns, name, l, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, cdata, []ocispec.Descriptor{layer})
}

// storeImage writes the image configuration cdata and a manifest of
// layers (already in the store under l) as manifestType and configType,
// unpacks the image and records it as name (the config digest if empty).
func (s *Service) storeImage(ctx context.Context, ns, name string, l *lease, manifestType, configType string, cdata []byte, layers []ocispec.Descriptor) (metadata.Image, *parts, error) {
	cdesc := ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(cdata), Size: int64(len(cdata))}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType, Config: cdesc, Layers: layers}
	mdata, err := json.Marshal(m)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	mdesc := ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(mdata), Size: int64(len(mdata))}
	if err := l.addBlobs(cdesc.Digest, mdesc.Digest); err != nil {
		return metadata.Image{}, nil, err
	}
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cdesc, cdata}, {mdesc, mdata}} {
		if err := s.putBlob(ctx, b.desc, b.data); err != nil {
			return metadata.Image{}, nil, err
		}
	}
	p, err := s.loadParts(ctx, mdesc, "")
	if err != nil {
		return metadata.Image{}, nil, err
	}
	if err := s.unpack(ctx, p, l, func(Progress) {}); err != nil {
		return metadata.Image{}, nil, err
	}
	if err := ctx.Err(); err != nil {
		return metadata.Image{}, nil, err
	}
	rec := metadata.Image{Name: name, Target: mdesc}
	if rec.Name == "" {
		rec.Name = cdesc.Digest.String()
	}
	err = s.db.Update(func(tx *metadata.Tx) error {
		var err error
		rec, err = recordImage(tx, ns, rec)
		return err
	})
	if err != nil {
		return metadata.Image{}, nil, err
	}
	return rec, p, nil
}

// importLayer stores the tarball of r gzip-compressed and returns the
// layer's descriptor and its diff ID (the digest of the uncompressed tar).
func (s *Service) importLayer(ctx context.Context, r io.Reader, l *lease) (ocispec.Descriptor, digest.Digest, error) {
	tarStream, closeFn, err := decompress(r)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("read the tarball: %w", err)
	}
	defer closeFn()
	w, err := s.store.Writer(ctx, "import-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer w.Close()
	diff := digest.Canonical.Digester()
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	n, err := io.Copy(zw, io.TeeReader(&ctxReader{ctx: ctx, r: tarStream}, diff.Hash()))
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("read the tarball: %w", err)
	}
	if n == 0 {
		return ocispec.Descriptor{}, "", fmt.Errorf("the tarball is empty: %w", errdefs.ErrInvalidArgument)
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	// Leased before it is published; GC cannot run meanwhile (the caller
	// holds the gate).
	if err := l.addBlobs(desc.Digest); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := w.Commit(ctx); err != nil && !isAlreadyExists(err) {
		return ocispec.Descriptor{}, "", err
	}
	return desc, diff.Digest(), nil
}

// ctxReader stops reading when ctx is done (a client that went away).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// putBlob stores data as blob desc.
func (s *Service) putBlob(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	w, err := s.store.Writer(ctx, "put-"+desc.Digest.String(), desc)
	if isAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Commit(ctx); err != nil && !isAlreadyExists(err) {
		return err
	}
	return nil
}

// ParseChanges applies Dockerfile instructions, as `docker import
// --change` and `docker commit --change` take them, to an empty image
// configuration: CMD, ENTRYPOINT (JSON or shell form), ENV, LABEL, EXPOSE,
// VOLUME, WORKDIR, USER, STOPSIGNAL. Others are refused.
func ParseChanges(changes []string) (ocispec.ImageConfig, error) {
	return ApplyChanges(ocispec.ImageConfig{}, changes)
}

// ApplyChanges applies changes (as ParseChanges takes them) to a copy of
// base, for `docker commit --change`.
func ApplyChanges(base ocispec.ImageConfig, changes []string) (ocispec.ImageConfig, error) {
	cfg := base
	cfg.Env = slices.Clone(base.Env)
	cfg.Cmd = slices.Clone(base.Cmd)
	cfg.Entrypoint = slices.Clone(base.Entrypoint)
	cfg.Labels = maps.Clone(base.Labels)
	cfg.ExposedPorts = maps.Clone(base.ExposedPorts)
	cfg.Volumes = maps.Clone(base.Volumes)
	cmdSet := false
	for _, c := range changes {
		if err := applyChange(&cfg, c); err != nil {
			return ocispec.ImageConfig{}, fmt.Errorf("change %q: %w", c, err)
		}
		// As in a Dockerfile: ENTRYPOINT drops an inherited CMD, not one
		// an earlier change set.
		switch instr, _, _ := strings.Cut(strings.TrimSpace(c), " "); strings.ToUpper(instr) {
		case "CMD":
			cmdSet = true
		case "ENTRYPOINT":
			if !cmdSet {
				cfg.Cmd = nil
			}
		}
	}
	return cfg, nil
}

func applyChange(cfg *ocispec.ImageConfig, change string) error {
	change = strings.TrimSpace(change)
	instr, arg, _ := strings.Cut(change, " ")
	arg = strings.TrimSpace(arg)
	bad := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
	}
	if instr == "" {
		return bad("empty instruction")
	}
	if arg == "" {
		return bad("%s needs an argument", strings.ToUpper(instr))
	}
	switch strings.ToUpper(instr) {
	case "CMD":
		cmd, err := commandForm(arg)
		if err != nil {
			return err
		}
		cfg.Cmd = cmd
	case "ENTRYPOINT":
		ep, err := commandForm(arg)
		if err != nil {
			return err
		}
		cfg.Entrypoint = ep
	case "ENV":
		kvs, err := keyValues(arg, "ENV")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			k := kv[0]
			replaced := false
			for i, e := range cfg.Env {
				if strings.HasPrefix(e, k+"=") {
					cfg.Env[i] = k + "=" + kv[1]
					replaced = true
				}
			}
			if !replaced {
				cfg.Env = append(cfg.Env, k+"="+kv[1])
			}
		}
	case "LABEL":
		kvs, err := keyValues(arg, "LABEL")
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "EXPOSE":
		words, err := splitWords(arg)
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, w := range words {
			port, proto, _ := strings.Cut(w, "/")
			if proto == "" {
				proto = "tcp"
			}
			if !isPort(port) || (proto != "tcp" && proto != "udp" && proto != "sctp") {
				return bad("EXPOSE: %q is not a port[/tcp|udp|sctp]", w)
			}
			cfg.ExposedPorts[port+"/"+strings.ToLower(proto)] = struct{}{}
		}
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(arg, "[") {
			if err := json.Unmarshal([]byte(arg), &vols); err != nil {
				return bad("VOLUME: not a JSON array of strings: %v", err)
			}
		} else {
			var err error
			if vols, err = splitWords(arg); err != nil {
				return err
			}
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			if v == "" {
				return bad("VOLUME: empty path")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case "WORKDIR":
		dir := unquote(arg)
		if !path.IsAbs(dir) {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			dir = path.Join(base, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
	case "USER":
		cfg.User = unquote(arg)
	case "STOPSIGNAL":
		cfg.StopSignal = unquote(arg)
	case "HEALTHCHECK", "ONBUILD", "SHELL":
		return fmt.Errorf("%s is not supported by skiff: %w", strings.ToUpper(instr), errdefs.ErrNotImplemented)
	default:
		return bad("%s is not an instruction import and commit accept (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)", instr)
	}
	return nil
}

// commandForm parses CMD/ENTRYPOINT: a JSON array, or a shell command
// (run with /bin/sh -c).
func commandForm(arg string) ([]string, error) {
	if strings.HasPrefix(arg, "[") {
		var out []string
		if err := json.Unmarshal([]byte(arg), &out); err == nil {
			return out, nil
		}
		// Not valid JSON: docker treats it as a shell command.
	}
	return []string{"/bin/sh", "-c", arg}, nil
}

// keyValues parses `k=v k2="v 2"`, or the legacy `k value with spaces`.
func keyValues(arg, instr string) ([][2]string, error) {
	words, err := splitWords(arg)
	if err != nil {
		return nil, err
	}
	if len(words) > 0 && !strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(arg, " ")
		v = strings.TrimSpace(v)
		if v == "" && instr == "LABEL" {
			return nil, fmt.Errorf("%s %s: give key=value: %w", instr, k, errdefs.ErrInvalidArgument)
		}
		return [][2]string{{k, unquote(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not key=value: %w", instr, w, errdefs.ErrInvalidArgument)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits s at unquoted blanks, removing quotes ("…", '…') and
// backslash escapes.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, c := range s {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case c == '\\' && quote != '\'':
			esc = true
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q: %w", s, errdefs.ErrInvalidArgument)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func unquote(s string) string {
	if w, err := splitWords(s); err == nil && len(w) == 1 {
		return w[0]
	}
	return s
}

func isPort(s string) bool {
	lo, hi, isRange := strings.Cut(s, "-")
	ok := func(p string) bool {
		if p == "" || len(p) > 5 {
			return false
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		return n > 0 && n <= 65535
	}
	return ok(lo) && (!isRange || ok(hi))
}
