package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// endpoint is where a registry domain is reached.
type endpoint struct {
	domain string // as in references: "docker.io", "localhost:5000"
	host   string // the API host: "registry-1.docker.io", "localhost:5000"
	scheme string // "https" or "http"
}

func (e endpoint) url(path string) string { return e.scheme + "://" + e.host + path }

// endpointFor maps a reference's domain to its API endpoint: docker.io is
// served by registry-1.docker.io; loopback registries and those listed
// in Options.Insecure speak plain HTTP, all others HTTPS.
func (r *Resolver) endpointFor(domain string) endpoint {
	e := endpoint{domain: domain, host: domain, scheme: "https"}
	if domain == "docker.io" {
		e.host = "registry-1.docker.io"
	}
	if isLoopback(domain) || r.isInsecure(domain) {
		e.scheme = "http"
	}
	return e
}

// splitHostPort splits "host[:port]" and "[v6]:port"; port may be "".
func splitHostPort(domain string) (host, port string) {
	if h, p, err := net.SplitHostPort(domain); err == nil {
		return h, p
	}
	return strings.Trim(domain, "[]"), ""
}

// isLoopback reports whether domain names this machine: localhost,
// 127.0.0.0/8 or ::1, with any port. Docker lets those speak plain HTTP.
func isLoopback(domain string) bool {
	h, _ := splitHostPort(domain)
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// isInsecure reports whether domain matches an entry of Options.Insecure:
// the same "host[:port]", the same host (any port), or a CIDR containing
// the host's IP address.
func (r *Resolver) isInsecure(domain string) bool {
	h, _ := splitHostPort(domain)
	for _, entry := range r.opts.Insecure {
		entry = strings.TrimSpace(entry)
		entry = strings.TrimPrefix(strings.TrimPrefix(entry, "http://"), "https://")
		if entry == "" {
			continue
		}
		if strings.EqualFold(entry, domain) || strings.EqualFold(entry, h) {
			return true
		}
		if pfx, err := netip.ParsePrefix(entry); err == nil {
			if ip, err := netip.ParseAddr(h); err == nil && pfx.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// newClient builds the HTTP client from the options' timeouts. Redirects
// (blob storage) are followed; net/http drops the Authorization header
// when a redirect leaves the registry's host.
func newClient(o Options) *http.Client {
	if o.Transport != nil {
		return &http.Client{Transport: o.Transport}
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: 5 * time.Second,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: t}
}

// stallError is the cancellation cause of a response whose body stopped
// flowing for longer than Options.StallTimeout.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("no data received for %s", e.after)
}
func (e *stallError) Timeout() bool { return true }

// watchedBody cancels its request when no byte arrives for the stall
// timeout, so a registry that stops sending mid-blob cannot hang a pull.
type watchedBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	after  time.Duration
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.after)
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil {
			var se *stallError
			if errors.As(cause, &se) {
				return n, se
			}
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// send performs one logical request with retries: connection errors,
// 429 and 5xx are retried with exponential backoff (honouring
// Retry-After) up to Options.MaxAttempts. newReq is called for each
// attempt. The response, whatever its status, is returned for the caller
// to interpret, with the number of attempts made; its body must be closed.
func (r *Resolver) send(ctx context.Context, newReq func(context.Context) (*http.Request, error)) (*http.Response, int, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithCancelCause(ctx)
		req, err := newReq(rctx)
		if err != nil {
			cancel(nil)
			return nil, attempt, err
		}
		if r.opts.UserAgent != "" {
			req.Header.Set("User-Agent", r.opts.UserAgent)
		}
		resp, err := r.client.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			cancel(nil)
			lastErr = err
			if !retryable(ctx, err) || attempt >= r.opts.MaxAttempts {
				return nil, attempt, &attemptsError{err: err, attempts: attempt}
			}
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
			if attempt >= r.opts.MaxAttempts {
				resp.Body = &cancelBody{resp.Body, cancel}
				return resp, attempt, nil
			}
			wait = retryAfter(resp.Header.Get("Retry-After"))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel(nil)
			lastErr = fmt.Errorf("HTTP %s", resp.Status)
		default:
			t := time.AfterFunc(r.opts.StallTimeout, func() { cancel(&stallError{r.opts.StallTimeout}) })
			resp.Body = &watchedBody{rc: resp.Body, ctx: rctx, cancel: cancel, timer: t, after: r.opts.StallTimeout}
			return resp, attempt, nil
		}
		if err := r.backoff(ctx, attempt, wait); err != nil {
			return nil, attempt, fmt.Errorf("%w (while waiting to retry after: %v)", err, lastErr)
		}
	}
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(nil); return err }

// attemptsError is a transport error after the given number of attempts.
type attemptsError struct {
	err      error
	attempts int
}

func (e *attemptsError) Error() string {
	if e.attempts > 1 {
		return fmt.Sprintf("%v (after %d attempts)", e.err, e.attempts)
	}
	return e.err.Error()
}
func (e *attemptsError) Unwrap() error { return e.err }

// backoff sleeps before attempt+1: RetryBackoff·2^(attempt-1) with ±25%
// jitter, capped at 30s, or the server's Retry-After if longer (also
// capped).
func (r *Resolver) backoff(ctx context.Context, attempt int, serverWait time.Duration) error {
	d := r.opts.RetryBackoff << (attempt - 1)
	d = d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
	if serverWait > d {
		d = serverWait
	}
	d = min(d, 30*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// retryable reports whether a transport error is worth another attempt:
// connection refused or reset, timeouts, truncated bodies. Certificate
// problems, protocol mismatches, unknown hosts and the caller's own
// cancellation are not.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if isTLSError(err) || errors.Is(err, http.ErrSchemeMismatch) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	var stall *stallError
	var ne net.Error
	switch {
	case errors.As(err, &stall),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne):
		return true
	}
	return false
}

func isTLSError(err error) bool {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		record      tls.RecordHeaderError
	)
	return errors.As(err, &unknownAuth) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &record)
}

// transportError explains a failed connection to the registry: what
// happened, and what the user can do about it.
func transportError(e endpoint, err error) error {
	var dnsErr *net.DNSError
	var stall *stallError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("registry %s: %w", e.host, err)
	case errors.Is(err, http.ErrSchemeMismatch):
		return fmt.Errorf("%w: registry %s answered HTTPS with plain HTTP: if it is meant to be used without TLS, allow it with --insecure-registry %s: %w", errdefs.ErrFailedPrecondition, e.host, e.domain, err)
	case isTLSError(err):
		return fmt.Errorf("%w: TLS with registry %s failed: if it uses a self-signed or private certificate, install its CA, or allow it with --insecure-registry %s: %w", errdefs.ErrFailedPrecondition, e.host, e.domain, err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Errorf("%w: registry host %s does not resolve: check the image name's registry part: %w", errdefs.ErrNotFound, e.host, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("registry %s (%s) refused the connection: is it running, and is the port right?: %w", e.host, e.scheme, err)
	case errors.As(err, &stall), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("registry %s timed out: check the network or the registry's health and retry: %w", e.host, err)
	}
	return fmt.Errorf("registry %s: %w", e.host, err)
}
