package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// kernelCounters are the machine's network counters that explain a slow
// tail on loopback. Every copy the generator reads went through the
// kernel's per-CPU backlog queue (net.core.netdev_max_backlog packets);
// when a burst of writes fills it, the kernel drops the packet, and TCP
// sends it again only when its loss probe fires, which for the one
// segment of a small push is 200 ms later. A broadcast with one such copy
// takes 200 ms longer than the others, whatever the server did.
type kernelCounters struct {
	backlogDrops uint64 // /proc/net/softnet_stat, second column, every CPU
	retransmits  uint64 // /proc/net/snmp, Tcp RetransSegs
	lossProbes   uint64 // /proc/net/netstat, TcpExt TCPLossProbes
}

// readKernel reads the counters; ok is false where /proc does not have
// the backlog's. TCP's counters are 0 where the kernel does not keep them.
// softnet_stat covers the whole machine; the TCP counters, this network
// namespace.
func readKernel() (k kernelCounters, ok bool) {
	soft, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return k, false
	}
	if k.backlogDrops, err = parseSoftnetDrops(soft); err != nil {
		return k, false
	}
	if b, err := os.ReadFile("/proc/net/snmp"); err == nil {
		k.retransmits, _ = procNetField(b, "Tcp:", "RetransSegs")
	}
	if b, err := os.ReadFile("/proc/net/netstat"); err == nil {
		k.lossProbes, _ = procNetField(b, "TcpExt:", "TCPLossProbes")
	}
	return k, true
}

// parseSoftnetDrops sums the dropped column (the second, in hex) of every
// CPU's line of /proc/net/softnet_stat.
func parseSoftnetDrops(b []byte) (uint64, error) {
	var sum uint64
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(string(f[1]), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected softnet_stat: %.60q", line)
		}
		sum += n
	}
	return sum, nil
}

// procNetField reads one counter of /proc/net/snmp or /proc/net/netstat,
// where each group is a line of names followed by a line of values, both
// starting with the group's prefix.
func procNetField(b []byte, prefix, name string) (uint64, error) {
	var names []string
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte(prefix))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("no %s %s", prefix, name)
}

// backlogLimit is net.core.netdev_max_backlog, or 0 where it is unknown.
func backlogLimit() int {
	b, err := os.ReadFile("/proc/sys/net/core/netdev_max_backlog")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// kernelUse is what the kernel did to the phase's packets.
type kernelUse struct {
	BacklogDrops uint64 `json:"backlog_drops"`
	Retransmits  uint64 `json:"tcp_retransmits"`
	LossProbes   uint64 `json:"tcp_loss_probes"`
	BacklogLimit int    `json:"netdev_max_backlog,omitempty"`
}

func kernelDelta(a, b kernelCounters) *kernelUse {
	d := func(x, y uint64) uint64 { return y - min(x, y) }
	return &kernelUse{
		BacklogDrops: d(a.backlogDrops, b.backlogDrops),
		Retransmits:  d(a.retransmits, b.retransmits),
		LossProbes:   d(a.lossProbes, b.lossProbes),
		BacklogLimit: backlogLimit(),
	}
}

func (k *kernelUse) text() string {
	s := fmt.Sprintf("%d packets dropped at the backlog, %d TCP segment(s) sent again (%d by loss probes)",
		k.BacklogDrops, k.Retransmits, k.LossProbes)
	if k.BacklogDrops > 0 {
		s += fmt.Sprintf(": each dropped copy came about 200 ms late; net.core.netdev_max_backlog is %d", k.BacklogLimit)
	}
	return s
}
