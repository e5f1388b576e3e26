package legacy

import (
	"cmp"
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/policy"
)

// DefaultWindow is the window of Summary.UsedWithin when the report is not
// filtered by used_within.
const DefaultWindow = 30 * 24 * time.Hour

// ReportFilter selects the legacy tokens of a Report; zero fields select
// all.
type ReportFilter struct {
	// UsedWithin keeps the tokens used within that time before now
	// (still in use).
	UsedWithin time.Duration
	// UnusedFor keeps the tokens not used for at least that time, never
	// used ones among them (candidates to revoke).
	UnusedFor time.Duration
}

// Report is the legacy migration report: which legacy tokens are still in
// use and from where.
type Report struct {
	// Tokens are the selected tokens, by owner then creation.
	Tokens []Usage `json:"tokens"`
	// Summary counts them.
	Summary Summary `json:"summary"`
}

// Summary sums up a Report. Total counts every legacy token; the other
// counts and the lists are about the tokens the report selected.
type Summary struct {
	// Total is the number of legacy tokens, selected or not.
	Total int `json:"total"`
	// Listed is the number of tokens the report selected.
	Listed int `json:"listed"`
	// Window is the window of UsedWithin: the used_within filter, or
	// DefaultWindow, as a duration ("720h0m0s") and in days.
	Window     string  `json:"window"`
	WindowDays float64 `json:"window_days"`
	// UsedWithin is how many selected tokens were used within Window.
	UsedWithin int `json:"used_within"`
	// NeverUsed is how many selected tokens were never used.
	NeverUsed int `json:"never_used"`
	// Addresses and Sites are where the selected tokens are used from and
	// for (their recent addresses and last use), with how many tokens
	// each; most tokens first.
	Addresses []Source `json:"addresses"`
	Sites     []Source `json:"sites"`
}

// Source is one address or site of Summary.
type Source struct {
	// Address or Site names it (one of the two is set).
	Address string `json:"address,omitempty"`
	Site    string `json:"site,omitempty"`
	// Tokens is how many selected tokens were used from (or for) it.
	Tokens int `json:"tokens"`
	// LastUsedAt is the newest of those uses.
	LastUsedAt time.Time `json:"last_used_at"`
}

// Report lists the legacy tokens f selects with their last use and recent
// addresses, and sums them up.
func (s *Service) Report(ctx context.Context, f ReportFilter) (Report, error) {
	all, err := s.Usages(ctx)
	if err != nil {
		return Report{}, err
	}
	now := s.now()
	window := cmp.Or(f.UsedWithin, DefaultWindow)
	rep := Report{Tokens: []Usage{}, Summary: Summary{
		Total: len(all), Window: window.String(), WindowDays: window.Hours() / 24,
		Addresses: []Source{}, Sites: []Source{},
	}}
	addrs, sites := map[string]*Source{}, map[string]*Source{}
	count := func(m map[string]*Source, name string, at time.Time, site bool) {
		if name == "" {
			return
		}
		src, ok := m[name]
		if !ok {
			src = &Source{}
			if site {
				src.Site = name
			} else {
				src.Address = name
			}
			m[name] = src
		}
		src.Tokens++
		if at.After(src.LastUsedAt) {
			src.LastUsedAt = at
		}
	}
	for _, u := range all {
		used := u.LastUsedAt != nil
		if f.UsedWithin > 0 && (!used || now.Sub(*u.LastUsedAt) > f.UsedWithin) {
			continue
		}
		if f.UnusedFor > 0 && used && now.Sub(*u.LastUsedAt) < f.UnusedFor {
			continue
		}
		rep.Tokens = append(rep.Tokens, u)
		switch {
		case !used:
			rep.Summary.NeverUsed++
			continue
		case now.Sub(*u.LastUsedAt) <= window:
			rep.Summary.UsedWithin++
		}
		// Each address and site once per token, with its newest use.
		ips, hosts := map[string]time.Time{u.LastUsedIP: *u.LastUsedAt}, map[string]time.Time{u.LastUsedHost: *u.LastUsedAt}
		for _, a := range u.RecentAddresses {
			ips[a.IP] = later(ips[a.IP], a.LastUsedAt)
			hosts[a.Host] = later(hosts[a.Host], a.LastUsedAt)
		}
		for ip, at := range ips {
			count(addrs, ip, at, false)
		}
		for host, at := range hosts {
			count(sites, host, at, true)
		}
	}
	rep.Summary.Listed = len(rep.Tokens)
	rep.Summary.Addresses = sorted(addrs)
	rep.Summary.Sites = sorted(sites)
	return rep, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sorted returns m's sources, most tokens first, then the newest use,
// then by name.
func sorted(m map[string]*Source) []Source {
	out := make([]Source, 0, len(m))
	for _, src := range m {
		out = append(out, *src)
	}
	slices.SortFunc(out, func(a, b Source) int {
		return cmp.Or(cmp.Compare(b.Tokens, a.Tokens), b.LastUsedAt.Compare(a.LastUsedAt),
			strings.Compare(a.Address+a.Site, b.Address+b.Site))
	})
	return out
}

// ParseReportFilter reads the report's query parameters: used_within and
// unused_for, each a period as policy.ParsePeriod reads it ("30d", "36h",
// "3600"). Any other parameter, a repeated one or a bad value is a
// 400 naming the parameter.
func ParseReportFilter(q url.Values) (ReportFilter, error) {
	var f ReportFilter
	for name, vs := range q {
		var dst *time.Duration
		switch name {
		case "used_within":
			dst = &f.UsedWithin
		case "unused_for":
			dst = &f.UnusedFor
		default:
			return ReportFilter{}, apierr.InputField(name, errors.New("unknown parameter (want used_within or unused_for)"))
		}
		if len(vs) != 1 {
			return ReportFilter{}, apierr.Field(name, errors.New("given more than once"))
		}
		d, err := policy.ParsePeriod(vs[0])
		if err != nil {
			return ReportFilter{}, apierr.Field(name, err)
		}
		*dst = d
	}
	return f, nil
}
