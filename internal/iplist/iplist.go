// Package iplist parses and applies IP allow-lists: addresses or CIDR
// prefixes, IPv4 and IPv6; an empty list allows any address.
package iplist

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
)

// MaxEntries bounds an allow-list.
const MaxEntries = 256

// List is a parsed allow-list. The zero value allows any address.
type List []netip.Prefix

// Parse reads addresses ("10.0.0.1", "::1") and prefixes ("10.0.0.0/8",
// "2001:db8::/32"). A bare address becomes a single-address prefix;
// IPv4-mapped IPv6 addresses are unmapped; prefixes are masked, so
// "10.1.2.3/8" is stored as "10.0.0.0/8".
func Parse(entries []string) (List, error) {
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("at most %d allowed IP entries", MaxEntries)
	}
	var l List
	for _, e := range entries {
		p, err := parseOne(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		l = append(l, p)
	}
	return l, nil
}

func parseOne(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %s", apierr.Quote(s))
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				return netip.Prefix{}, fmt.Errorf("invalid CIDR %s: IPv4-mapped prefix shorter than /96", apierr.Quote(s))
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %s", apierr.Quote(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Strings returns the canonical form of every entry.
func (l List) Strings() []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = p.String()
	}
	return out
}

// Allows reports whether addr is in the list (always true for an empty
// list). An invalid addr is allowed only by an empty list.
func (l List) Allows(addr netip.Addr) bool {
	if len(l) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientUnit is what per-address limits count for a client address: the
// address itself for IPv4, its /64 for IPv6 (which one client usually
// holds whole, so counting single addresses would give it 2^64 tries).
func ClientUnit(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}
