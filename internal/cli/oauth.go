package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// AddOAuthCommands adds the `oauth` subcommands to cmd: OAuth keys
// (clients) and the signing settings.
func AddOAuthCommands(cmd *cobra.Command, connect Connect) {
	client := &cobra.Command{Use: "client", Short: "Manage OAuth keys (clients)"}

	add := &cobra.Command{
		Use:   "add <name> [--allow-ip <address|CIDR>]... [--scope <scope>]... [--disabled]",
		Short: "Add an OAuth key; prints its clientId and clientSecret (shown once)",
		Args:  cobra.ExactArgs(1),
	}
	addIPs := add.Flags().StringSlice("allow-ip", nil, "allowed client address or CIDR (repeatable; none: any address)")
	addScopes := add.Flags().StringSlice("scope", nil, "scope the key may be granted (repeatable)")
	addDisabled := add.Flags().Bool("disabled", false, "add the key switched off")
	add.RunE = func(c *cobra.Command, args []string) error {
		enabled := !*addDisabled
		body := map[string]any{"name": args[0], "allowed_ips": orNone(*addIPs), "scopes": orNone(*addScopes), "enabled": enabled}
		return call(c, connect, http.MethodPost, "/tokengate/oauth/clients", body, printJSON)
	}

	set := &cobra.Command{
		Use:   "set <clientId> [--enabled=true|false] [--name <name>] [--allow-ip <ip>]... [--scope <scope>]...",
		Short: "Switch an OAuth key on or off, rename it, or replace its allowed IPs or scopes",
		Args:  cobra.ExactArgs(1),
	}
	setEnabled := set.Flags().Bool("enabled", true, "switch the key on (true) or off (false)")
	setName := set.Flags().String("name", "", "new name")
	setIPs := set.Flags().StringSlice("allow-ip", nil, "replace the allowed IPs (--allow-ip '' allows any)")
	setScopes := set.Flags().StringSlice("scope", nil, "replace the scopes (--scope '' clears)")
	set.RunE = func(c *cobra.Command, args []string) error {
		return patch(c, connect, clientPath(args[0]), map[string]any{},
			flagMember{"enabled", "enabled", func() any { return *setEnabled }},
			flagMember{"name", "name", func() any { return *setName }},
			flagMember{"allow-ip", "allowed_ips", func() any { return nonEmpty(*setIPs) }},
			flagMember{"scope", "scopes", func() any { return nonEmpty(*setScopes) }})
	}

	client.AddCommand(add, set, rotateCommand("rotate-secret <clientId> [--overlap <duration>]",
		"Give an OAuth key a new clientSecret (printed once); the old one works for the overlap",
		1, func(args []string) string { return clientPath(args[0]) + "/rotate-secret" }, connect))
	client.AddCommand(resource{
		noun: "OAuth key", arg: "<clientId>", list: "/tokengate/oauth/clients", item: clientPath, printList: printClients,
		deleteShort: "Delete an OAuth key (its tokens stop working)",
	}.commands(connect)...)

	signing := &cobra.Command{Use: "signing", Short: "Show or change the access token signing settings"}
	change := &cobra.Command{
		Use:   "set [--algorithm HS256|RS256|ES256|EdDSA] [--reset] [--immediate|--grace] [--confirm] [--lifetime <seconds>] [--json]",
		Short: "Switch the algorithm, reset the key or set the token lifetime",
		Long: `A key change (--algorithm, --reset) needs --confirm and one of:

  --immediate  (a compromise) fresh keys sign at once; tokens signed with
               the old keys stop working at once, on every node, and the
               old keys leave the JWKS.
  --grace      (planned) the next key, published in the JWKS, signs once
               it has been published for jwks_max_age; the old key keeps
               verifying until the last token it signed has expired.

"signing show" says which key signs now, which signs next and from when,
and which old keys verify until when.`,
		Args: cobra.NoArgs,
	}
	alg := change.Flags().String("algorithm", "", "new signing algorithm")
	reset := change.Flags().Bool("reset", false, "replace the signing key")
	lifetime := change.Flags().Int64("lifetime", 0, "access token lifetime in seconds")
	immediate := change.Flags().Bool("immediate", false, "old tokens stop working now, fresh keys sign now (a compromise)")
	grace := change.Flags().Bool("grace", false, "old tokens work until they expire, the published next key signs after jwks_max_age")
	confirm := change.Flags().Bool("confirm", false, "I understand: apply the key change")
	setJSON := change.Flags().Bool("json", false, "print the settings as JSON")
	change.MarkFlagsMutuallyExclusive("immediate", "grace")
	change.RunE = func(c *cobra.Command, _ []string) error {
		body := map[string]any{}
		keyChange := *reset || c.Flags().Changed("algorithm")
		if keyChange {
			if !*confirm || (!*immediate && !*grace) {
				return errors.New("a key change needs --confirm and one of --immediate (old tokens stop working now) or --grace (old tokens work until they expire)")
			}
			body["reset"], body["confirm"] = *reset, true
			body["mode"] = "grace"
			if *immediate {
				body["mode"] = "immediate"
			}
		}
		if c.Flags().Changed("algorithm") {
			body["algorithm"] = *alg
		}
		if c.Flags().Changed("lifetime") {
			body["lifetime_seconds"] = *lifetime
		}
		return call(c, connect, http.MethodPost, "/tokengate/oauth/signing", body, signingPrinter(*setJSON))
	}
	show := &cobra.Command{
		Use: "show [--json]", Short: "Show which key signs now, which signs next and when, which old keys still verify, and the validation key", Args: cobra.NoArgs,
	}
	showJSON := show.Flags().Bool("json", false, "print the settings as JSON")
	show.RunE = func(c *cobra.Command, _ []string) error {
		return call(c, connect, http.MethodGet, "/tokengate/oauth/signing", nil, signingPrinter(*showJSON))
	}
	signing.AddCommand(change, show)
	cmd.AddCommand(client, signing)
}

func clientPath(id string) string { return "/tokengate/oauth/clients/" + url.PathEscape(id) }

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func printClients(w io.Writer, data []byte) error {
	var v struct {
		Clients []struct {
			ClientID   string   `json:"clientId"`
			Name       string   `json:"name"`
			AllowedIPs []string `json:"allowed_ips"`
			Scopes     []string `json:"scopes"`
			Enabled    bool     `json:"enabled"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tENABLED\tALLOWED IPS\tSCOPES")
	for _, c := range v.Clients {
		ips := strings.Join(c.AllowedIPs, ",")
		if ips == "" {
			ips = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", c.ClientID, c.Name, c.Enabled, ips, strings.Join(c.Scopes, " "))
	}
	return tw.Flush()
}

// signingPrinter prints the signing settings as JSON or as a summary.
func signingPrinter(asJSON bool) func(io.Writer, []byte) error {
	if asJSON {
		return printJSON
	}
	return printSigning
}

// printSigning summarises the signing settings: which key signs now,
// which signs next and from when, which old keys verify until when, the
// token lifetime and the validation key.
func printSigning(w io.Writer, data []byte) error {
	return printKeys(w, data, "validation key:", true)
}

// printKeys writes printSigning's summary of a keyring's settings, the
// public key under keyLabel, the token lifetime only if lifetime.
func printKeys(w io.Writer, data []byte, keyLabel string, lifetime bool) error {
	type key struct {
		KID           string    `json:"kid"`
		Alg           string    `json:"alg"`
		Since         time.Time `json:"since"`
		SignsFrom     time.Time `json:"signs_from"`
		Mode          string    `json:"mode"`
		UsableAt      time.Time `json:"usable_at"`
		VerifiesUntil time.Time `json:"verifies_until"`
	}
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	var v struct {
		LifetimeSeconds int64           `json:"lifetime_seconds"`
		ValidationKey   json.RawMessage `json:"validation_key"`
		Signing         key             `json:"signing"`
		Next            *key            `json:"next"`
		Verifying       []key           `json:"verifying"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	// The labels' column is as wide for every keyring (the longest label,
	// "validation key:", and two spaces), whichever lines are written.
	tw := tabwriter.NewWriter(w, len("validation key:")+2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "signs now:\t%s %s since %s\n", v.Signing.Alg, v.Signing.KID, at(v.Signing.Since))
	switch {
	case v.Next == nil:
	case !v.Next.SignsFrom.IsZero():
		fmt.Fprintf(tw, "signs next:\t%s %s from %s (%s)\n", v.Next.Alg, v.Next.KID, at(v.Next.SignsFrom), v.Next.Mode)
	default:
		fmt.Fprintf(tw, "signs next:\t%s %s after the next key change (with --grace not before %s)\n", v.Next.Alg, v.Next.KID, at(v.Next.UsableAt))
	}
	for _, k := range v.Verifying {
		fmt.Fprintf(tw, "still verifies:\t%s %s until %s (no longer signs)\n", k.Alg, k.KID, at(k.VerifiesUntil))
	}
	if lifetime {
		fmt.Fprintf(tw, "token lifetime:\t%ds\n", v.LifetimeSeconds)
	}
	var vk bytes.Buffer
	if err := json.Compact(&vk, v.ValidationKey); err != nil {
		return err
	}
	fmt.Fprintf(tw, "%s\t%s\n", keyLabel, vk.String())
	return tw.Flush()
}
