// Package clusternodes is what both the Redis store and the test clusters
// need to know of a Redis Cluster's slots: how a hash tag maps to a slot
// (CRC16) and what a CLUSTER NODES reply says. It stands apart because
// redisstore's tests import internal/testutil/redistest, which therefore
// cannot import redisstore.
package clusternodes

import (
	"fmt"
	"strconv"
	"strings"
)

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// CRC16 is the CRC16 (XMODEM: polynomial 0x1021, initial 0) with which a
// Redis Cluster maps a key's hash tag to its slot.
func CRC16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// TagSlot returns the slot of a key whose hash tag is tag ("{tag}...").
func TagSlot(tag string) int { return int(CRC16(tag) % SlotCount) }

// Node is one line of a CLUSTER NODES reply: "<id>
// <ip:port@cport[,hostname]> <flags> <primary id or -> <ping> <pong>
// <epoch> <link> <slot or first-last>...".
type Node struct {
	ID string
	// Addr is ip:port; ":port" for a node that does not know its own
	// address yet (one that never met another).
	Addr string
	// Hostname is the hostname the node announces, "" if none.
	Hostname string
	// Flags are the comma-separated flags (myself, master, slave, fail...).
	Flags string
	// Primary is the ID of a replica's primary, "-" for a primary.
	Primary string
	// Slots are the ranges of slots the node serves, first and last;
	// slots being imported or migrated ("[...]") are left out.
	Slots [][2]int
}

// HasFlag reports whether flag is one of n's flags.
func (n Node) HasFlag(flag string) bool { return strings.Contains(","+n.Flags+",", ","+flag+",") }

// Replica reports whether n replicates a primary.
func (n Node) Replica() bool { return n.HasFlag("slave") && n.Primary != "-" }

// Serves reports whether n serves slot.
func (n Node) Serves(slot int) bool {
	for _, r := range n.Slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// Parse reads a CLUSTER NODES reply, skipping lines too short to be a
// node's. A slot range that is not one is an error.
func Parse(out string) ([]Node, error) {
	var nodes []Node
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, rest, _ := strings.Cut(f[1], "@")
		_, hostname, _ := strings.Cut(rest, ",")
		n := Node{ID: f[0], Addr: addr, Hostname: hostname, Flags: f[2], Primary: f[3]}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			first, err1 := strconv.Atoi(lo)
			last, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || first < 0 || first > last || last >= SlotCount {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot range %q", r)
			}
			n.Slots = append(n.Slots, [2]int{first, last})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
