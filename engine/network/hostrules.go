package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// A network's host rules are iptables rules that skiffd owns, one set per
// network, as docker's: the outgoing NAT (nat POSTROUTING -s SUBNET ! -o
// BRIDGE -j MASQUERADE) instead of the bridge plugin's ipMasq, which makes
// a chain with two rules and a jump for every container on ADD and removes
// them on DEL; and forwarding (filter FORWARD: -i BRIDGE -j ACCEPT, and -o
// BRIDGE for RELATED,ESTABLISHED connections) instead of the firewall
// plugin, which adds and removes two rules per container. Each plugin cost
// some 15 runs of iptables per container. skiffd makes the rules the first
// time a container joins the network after skiffd started (iptables rules do
// not outlive a reboot; making them is idempotent) and removes them with the
// network. Networks whose conflist predates this (Network.Masquerade,
// Network.Forward false) keep the plugins'.

// hostRule is one rule: its table, chain, and specification.
type hostRule struct {
	table, chain string
	spec         []string
	// insert puts the rule first in its chain (FORWARD, ahead of a host
	// firewall's own rules, as docker does); else it is appended.
	insert bool
}

// hostRules are n's rules.
func hostRules(n Network) []hostRule {
	if n.Internal {
		return nil
	}
	comment := []string{"-m", "comment", "--comment", "skiff network " + n.Name + " " + n.ID}
	var rules []hostRule
	if n.Masquerade {
		rules = append(rules, hostRule{table: "nat", chain: "POSTROUTING", spec: masqueradeRule(n)})
	}
	if n.Forward {
		rules = append(rules,
			hostRule{table: "filter", chain: "FORWARD", insert: true,
				spec: append(append([]string{"-o", n.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, comment...), "-j", "ACCEPT")},
			hostRule{table: "filter", chain: "FORWARD", insert: true,
				spec: append(append([]string{"-i", n.Bridge}, comment...), "-j", "ACCEPT")})
	}
	return rules
}

// masqueradeRule is the masquerade rule's specification.
func masqueradeRule(n Network) []string {
	return []string{"-s", n.Subnet.Masked().String(), "!", "-o", n.Bridge,
		"-m", "comment", "--comment", "skiff network " + n.Name + " " + n.ID,
		"-j", "MASQUERADE"}
}

// iptables runs iptables with args, waiting for the xtables lock.
func iptables(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &iptablesError{code: ee.ExitCode(), msg: string(bytes.TrimSpace(stderr.Bytes()))}
		}
		return fmt.Errorf("run iptables (is it installed? Debian package iptables): %w", err)
	}
	return nil
}

type iptablesError struct {
	code int
	msg  string
}

func (e *iptablesError) Error() string {
	return fmt.Sprintf("iptables exited %d: %s", e.code, e.msg)
}

// ruleAbsent reports whether err is iptables -C saying "no such rule" (exit 1).
func ruleAbsent(err error) bool {
	var ie *iptablesError
	return errors.As(err, &ie) && ie.code == 1
}

// ensureHostRulesLocked makes n's rules unless this manager already did.
func (m *Manager) ensureHostRulesLocked(ctx context.Context, n Network) error {
	if m.ruled[n.Name] == n.ID {
		return nil
	}
	for _, r := range hostRules(n) {
		err := iptables(ctx, append([]string{"-t", r.table, "-C", r.chain}, r.spec...)...)
		if ruleAbsent(err) {
			op := []string{"-t", r.table, "-A", r.chain}
			if r.insert {
				op = []string{"-t", r.table, "-I", r.chain, "1"}
			}
			err = iptables(ctx, append(op, r.spec...)...)
		}
		if err != nil {
			return fmt.Errorf("network %s: add its rule in %s %s: %w", n.Name, r.table, r.chain, err)
		}
	}
	m.ruled[n.Name] = n.ID
	return nil
}

// removeHostRulesLocked deletes n's rules that are there.
func (m *Manager) removeHostRulesLocked(ctx context.Context, n Network) error {
	delete(m.ruled, n.Name)
	for _, r := range hostRules(n) {
		for {
			err := iptables(ctx, append([]string{"-t", r.table, "-C", r.chain}, r.spec...)...)
			if ruleAbsent(err) {
				break
			}
			if err == nil {
				err = iptables(ctx, append([]string{"-t", r.table, "-D", r.chain}, r.spec...)...)
			}
			if err != nil {
				return fmt.Errorf("network %s: delete its rule in %s %s: %w", n.Name, r.table, r.chain, err)
			}
		}
	}
	return nil
}
