package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// A network's outgoing NAT is one rule in nat POSTROUTING that skiffd owns
// (-s SUBNET ! -o BRIDGE -j MASQUERADE, as docker's), not the bridge
// plugin's ipMasq: that makes a chain with two rules and a jump for every
// container on ADD and removes them on DEL, some 15 runs of iptables per
// container. skiffd makes the rule the first time a container joins the
// network after skiffd started (iptables rules do not outlive a reboot;
// making it is idempotent) and removes it with the network. Networks whose
// conflist predates this (Network.Masquerade false) keep the plugin's.

// masqueradeRule is the rule's specification after "-t nat -X POSTROUTING".
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

// ensureMasqueradeLocked makes n's masquerade rule unless this manager
// already did (or n needs none).
func (m *Manager) ensureMasqueradeLocked(ctx context.Context, n Network) error {
	if !n.Masquerade || n.Internal || m.masqueraded[n.Name] == n.ID {
		return nil
	}
	rule := masqueradeRule(n)
	err := iptables(ctx, append([]string{"-t", "nat", "-C", "POSTROUTING"}, rule...)...)
	if ruleAbsent(err) {
		err = iptables(ctx, append([]string{"-t", "nat", "-A", "POSTROUTING"}, rule...)...)
	}
	if err != nil {
		return fmt.Errorf("network %s: add its masquerade rule (nat POSTROUTING -s %s): %w", n.Name, n.Subnet, err)
	}
	m.masqueraded[n.Name] = n.ID
	return nil
}

// removeMasqueradeLocked deletes n's masquerade rule if it is there.
func (m *Manager) removeMasqueradeLocked(ctx context.Context, n Network) error {
	delete(m.masqueraded, n.Name)
	if !n.Masquerade || n.Internal {
		return nil
	}
	rule := masqueradeRule(n)
	for {
		err := iptables(ctx, append([]string{"-t", "nat", "-C", "POSTROUTING"}, rule...)...)
		if ruleAbsent(err) {
			return nil
		}
		if err == nil {
			err = iptables(ctx, append([]string{"-t", "nat", "-D", "POSTROUTING"}, rule...)...)
		}
		if err != nil {
			return fmt.Errorf("network %s: delete its masquerade rule: %w", n.Name, err)
		}
	}
}
