package images

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote"
)

// Pushed is what Push uploaded.
type Pushed struct {
	// Name is the normalised reference pushed.
	Name string
	// Target is the manifest (or index) now in the registry under Name.
	Target ocispec.Descriptor
}

// resolverFor returns the service's resolver, or, with auth, one of its
// own that uses auth for domain (so that tokens obtained with these
// credentials are not cached for other operations).
func (s *Service) resolverFor(domain string, auth *Auth, op string) (*remote.Resolver, error) {
	if auth == nil {
		return s.resolver, nil
	}
	if auth.IdentityToken != "" && auth.Password == "" {
		return nil, fmt.Errorf("registry identity tokens are not supported yet for %s; log in with a password or an access token: %w", op, errdefs.ErrNotImplemented)
	}
	opts := s.ropts
	a := *auth
	opts.Credentials = remote.CredentialsFunc(func(ctx context.Context, host string) (string, string, error) {
		if host == domain {
			return a.Username, a.Password, nil
		}
		if s.ropts.Credentials != nil {
			return s.ropts.Credentials.Credentials(ctx, host)
		}
		return "", "", nil
	})
	return remote.NewResolver(opts), nil
}

// Push uploads the local image ref names in ns to its registry under that
// name. What is pushed is the record's target as saved: an image pulled
// for one platform of an index is pushed as that platform's manifest (as
// Save does). Blobs that other names of the image (in the same registry)
// hold are mounted from there. auth, if not nil, replaces the daemon's
// credentials for the registry. progress, if not nil, receives progress
// (never concurrently). A failed push records nothing locally and leaves
// no tag in the registry (blobs already uploaded stay there, unreferenced,
// as with docker).
func (s *Service) Push(ctx context.Context, ns, ref string, auth *Auth, progress func(Progress)) (Pushed, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Pushed{}, fmt.Errorf("push %q: %w", ref, err)
	}
	r, err := reference.ParseDockerRef(ref)
	if err != nil {
		return Pushed{}, fmt.Errorf("push: %w", err)
	}
	name := r.String()
	rec, p, _, err := s.lookup(ctx, ns, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Pushed{}, fmt.Errorf("push %s: no local image of that name; tag an image with it first ('skiff tag IMAGE %s'): %w", name, r.Familiar(), errdefs.ErrNotFound)
		}
		return Pushed{}, fmt.Errorf("push %s: %w", name, err)
	}
	resolver, err := s.resolverFor(r.Domain, auth, "push "+name)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", name, err)
	}
	target := rec.Target
	if target.Digest != p.manifestDesc.Digest && (rec.Labels[labelManifest] != "" || !s.complete(ctx, target)) {
		target = plainDesc(p.manifestDesc)
	}
	var mountFrom []reference.Reference
	if others, err := s.namesOfID(ctx, ns, p.manifest.Config.Digest); err == nil {
		for _, o := range others {
			if or, err := reference.ParseDockerRef(o.Name); err == nil && or.Domain == r.Domain && or.Path != r.Path {
				mountFrom = append(mountFrom, or)
			}
		}
	}
	report := progressFunc(progress)
	log := s.log.With("namespace", ns, "image", name)
	log.Info("pushing image", "digest", target.Digest)

	// Hold the gate shared: GC must not delete the blobs being sent.
	s.gate.RLock()
	err = resolver.Push(ctx, r, s.store, target, remote.PushOptions{
		MountFrom: mountFrom,
		Progress: func(rp remote.PushProgress) {
			status := string(rp.Status)
			if rp.Status == remote.PushRetrying {
				status = "waiting"
			}
			report(Progress{ID: rp.Desc.Digest.String(), Kind: kindOf(rp.Desc.MediaType), Status: status, Current: rp.Done, Total: rp.Total})
		},
	})
	s.gate.RUnlock()
	if err != nil {
		log.Info("push failed", "error", err)
		return Pushed{}, err // names the image (remote's "push <ref>: …")
	}
	log.Info("pushed image", "digest", target.Digest)
	s.publish(ctx, ns, evPush, familiar(name), familiar(name), p.config.Config.Labels)
	return Pushed{Name: name, Target: target}, nil
}
