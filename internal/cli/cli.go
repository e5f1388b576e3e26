// Package cli implements tokengate's command-line subcommands. They talk to
// a running gateway through its admin API (the address comes from the
// --address flag or the admin setting of the --config file), never to the
// store directly, so they work the same with the embedded store and Redis.
// `secrets-key generate` needs neither: it prints a fresh key.
package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokengate/tokengate/internal/store"
)

// Requester sends one request to the admin API. A status of 400 or more
// must come back as an error carrying the admin API's message.
type Requester func(method, uri string, body io.Reader) (*http.Response, error)

// Connect builds a Requester from a command's flags.
type Connect func(cmd *cobra.Command) (Requester, error)

// AddUserCommands adds the `user` subcommands to cmd.
func AddUserCommands(cmd *cobra.Command, connect Connect) {
	add := &cobra.Command{
		Use:   "add <name> [--role <role>]... [--token-login] [--disabled]",
		Short: "Create a user; the password is read from standard input",
		Args:  cobra.ExactArgs(1),
	}
	roles := add.Flags().StringSlice("role", nil, "role to grant (repeatable), e.g. admin")
	tokenLogin := add.Flags().Bool("token-login", false, "allow the user to create and use tokens")
	disabled := add.Flags().Bool("disabled", false, "create the user disabled")
	add.RunE = func(c *cobra.Command, args []string) error {
		pw, err := readPassword(c)
		if err != nil {
			return err
		}
		body := map[string]any{"name": args[0], "password": pw, "roles": *roles, "token_login": *tokenLogin, "disabled": *disabled}
		return call(c, connect, http.MethodPost, "/tokengate/users", body, printJSON)
	}

	set := &cobra.Command{
		Use:   "set <name> [--token-login=true|false] [--disabled=true|false] [--role <role>]... [--password]",
		Short: "Change a user: token login, disabled, roles, password",
		Args:  cobra.ExactArgs(1),
	}
	setTokenLogin := set.Flags().Bool("token-login", false, "allow (true) or forbid (false) token login")
	setDisabled := set.Flags().Bool("disabled", false, "disable (true) or enable (false) the user")
	setRoles := set.Flags().StringSlice("role", nil, "replace the user's roles (repeatable; --role '' clears)")
	setPassword := set.Flags().Bool("password", false, "read a new password from standard input")
	set.RunE = func(c *cobra.Command, args []string) error {
		body := map[string]any{}
		if *setPassword {
			pw, err := readPassword(c)
			if err != nil {
				return err
			}
			body["password"] = pw
		}
		return patch(c, connect, userPath(args[0]), body,
			flagMember{"token-login", "token_login", func() any { return *setTokenLogin }},
			flagMember{"disabled", "disabled", func() any { return *setDisabled }},
			flagMember{"role", "roles", func() any { return nonEmpty(*setRoles) }})
	}

	tokenSet := &cobra.Command{
		Use:   "token-set <name> <token id> [--expires-in <seconds>] [--enabled=true|false] [--label <label>]",
		Short: "Change one of a user's tokens: its expiry, on/off, label",
		Args:  cobra.ExactArgs(2),
	}
	expiresIn := tokenSet.Flags().Int64("expires-in", 0, "the token expires this many seconds from now")
	tokenEnabled := tokenSet.Flags().Bool("enabled", true, "switch the token on (true) or off (false)")
	tokenLabel := tokenSet.Flags().String("label", "", "rename the token")
	tokenSet.RunE = func(c *cobra.Command, args []string) error {
		return patch(c, connect, userPath(args[0])+"/tokens/"+url.PathEscape(args[1]), map[string]any{},
			flagMember{"expires-in", "expires_in", func() any { return *expiresIn }},
			flagMember{"enabled", "enabled", func() any { return *tokenEnabled }},
			flagMember{"label", "label", func() any { return *tokenLabel }})
	}

	cmd.AddCommand(add, set, tokenSet)
	cmd.AddCommand(resource{
		noun: "user", arg: "<name>", list: "/tokengate/users", item: userPath, printList: printUsers,
		deleteShort: "Delete a user and all of its tokens",
	}.commands(connect)...)
	cmd.AddCommand(
		&cobra.Command{
			Use: "tokens <name>", Short: "List a user's tokens", Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return call(c, connect, http.MethodGet, userPath(args[0])+"/tokens", nil, printTokens)
			},
		},
		rotateCommand("rotate <name> <token id> [--overlap <duration>]",
			"Give one of a user's tokens a new secret (printed once); the old one works for the overlap",
			2, func(args []string) string {
				return userPath(args[0]) + "/tokens/" + url.PathEscape(args[1]) + "/rotate"
			}, connect),
		&cobra.Command{
			Use: "revoke <name> <token id>", Short: "Revoke one of a user's tokens", Args: cobra.ExactArgs(2),
			RunE: func(c *cobra.Command, args []string) error {
				return call(c, connect, http.MethodDelete, userPath(args[0])+"/tokens/"+url.PathEscape(args[1]), nil, printDone("revoked token "+args[1]))
			},
		},
	)
}

// rotateCommand is a command that POSTs {"overlap": ...} to path(args)
// and prints the answer (the new secret, shown once).
func rotateCommand(use, short string, nargs int, path func(args []string) string, connect Connect) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs)}
	overlap := cmd.Flags().String("overlap", "",
		"how long the old secret keeps working, e.g. 1h, 30m or 0 for not at all (default 1h, at most 168h)")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		body := map[string]any{}
		if c.Flags().Changed("overlap") {
			body["overlap"] = *overlap
		}
		return call(c, connect, http.MethodPost, path(args), body, printJSON)
	}
	return cmd
}

// AddStoreCommands adds the `store` subcommands to cmd.
func AddStoreCommands(cmd *cobra.Command, connect Connect) {
	check := &cobra.Command{
		Use:   "check [--repair]",
		Short: "Find (and repair) what a crash left between token records and their index",
		Args:  cobra.NoArgs,
	}
	repair := check.Flags().Bool("repair", false, "repair what is found")
	check.RunE = func(c *cobra.Command, _ []string) error {
		uri := "/tokengate/store/check"
		if *repair {
			uri += "?repair=true"
		}
		return call(c, connect, http.MethodPost, uri, nil, printCheck)
	}
	cmd.AddCommand(check, exportCommand(connect), importCommand(connect))
}

// flagMember maps a flag to the JSON member it sets when given.
type flagMember struct {
	flag, member string
	value        func() any
}

// patch adds to body the members of the flags given and sends it as a
// PATCH; with nothing to change it is an error.
func patch(c *cobra.Command, connect Connect, uri string, body map[string]any, fields ...flagMember) error {
	for _, f := range fields {
		if c.Flags().Changed(f.flag) {
			body[f.member] = f.value()
		}
	}
	if len(body) == 0 {
		return errors.New("nothing to change: give at least one flag")
	}
	return call(c, connect, http.MethodPatch, uri, body, printJSON)
}

func userPath(name string) string { return "/tokengate/users/" + url.PathEscape(name) }

// resource describes something the admin API lists, shows and deletes.
type resource struct {
	noun, arg   string // "user", "<name>"
	list        string // the list route
	item        func(id string) string
	printList   func(io.Writer, []byte) error
	deleteShort string
}

// commands returns list, show and delete for r.
func (r resource) commands(connect Connect) []*cobra.Command {
	return []*cobra.Command{
		{
			Use: "list", Short: "List " + r.noun + "s", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return call(c, connect, http.MethodGet, r.list, nil, r.printList)
			},
		},
		{
			Use: "show " + r.arg, Short: "Show a " + r.noun, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return call(c, connect, http.MethodGet, r.item(args[0]), nil, printJSON)
			},
		},
		{
			Use: "delete " + r.arg, Short: r.deleteShort, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return call(c, connect, http.MethodDelete, r.item(args[0]), nil, printDone("deleted "+r.noun+" "+args[0]))
			},
		},
	}
}

func nonEmpty(ss []string) []string {
	out := []string{}
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// call sends body (if any) as JSON and hands the response body to show.
func call(c *cobra.Command, connect Connect, method, uri string, body any, show func(io.Writer, []byte) error) error {
	req, err := connect(c)
	if err != nil {
		return err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	resp, err := req(method, uri, r)
	if err != nil {
		return readable(uri, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	return show(c.OutOrStdout(), data)
}

// readPassword reads a password: without echo, twice, from a terminal, or
// the first line of standard input otherwise (for scripts:
// `echo "$PW" | tokengate user add alice`).
func readPassword(c *cobra.Command) (string, error) {
	fd := int(os.Stdin.Fd())
	if c.InOrStdin() == os.Stdin && term.IsTerminal(fd) {
		fmt.Fprint(c.ErrOrStderr(), "Password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(c.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(c.ErrOrStderr(), "Again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(c.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if !bytes.Equal(p1, p2) {
			return "", errors.New("passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(c.InOrStdin()).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", errors.New("reading password from standard input: no password given")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func printJSON(w io.Writer, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, buf.String())
	return err
}

func printDone(msg string) func(io.Writer, []byte) error {
	return func(w io.Writer, _ []byte) error {
		_, err := fmt.Fprintln(w, msg)
		return err
	}
}

func printUsers(w io.Writer, data []byte) error {
	var v struct {
		Users []struct {
			Name       string   `json:"name"`
			Roles      []string `json:"roles"`
			TokenLogin bool     `json:"token_login"`
			Disabled   bool     `json:"disabled"`
		} `json:"users"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tTOKEN LOGIN\tDISABLED")
	for _, u := range v.Users {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", u.Name, strings.Join(u.Roles, ","), u.TokenLogin, u.Disabled)
	}
	return tw.Flush()
}

func printTokens(w io.Writer, data []byte) error {
	var v struct {
		Tokens []struct {
			ID         string     `json:"id"`
			Label      string     `json:"label"`
			Scopes     []string   `json:"scopes"`
			Enabled    bool       `json:"enabled"`
			CreatedAt  time.Time  `json:"created_at"`
			ExpiresAt  *time.Time `json:"expires_at"`
			LastUsedAt *time.Time `json:"last_used_at"`
			LastUsedIP *string    `json:"last_used_ip"`
			// LastUsedHost and RecentAddresses: the site of the
			// last use, the addresses of recent ones.
			LastUsedHost    *string `json:"last_used_host"`
			RecentAddresses []struct {
				IP string `json:"ip"`
			} `json:"recent_addresses"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	when := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The address and site as store.CleanHost shows them (a store
	// written before the gate cleaned them may hold a client's escapes).
	str := func(s *string) string {
		if s == nil || *s == "" {
			return "-"
		}
		return store.CleanHost(*s)
	}
	fmt.Fprintln(tw, "ID\tLABEL\tSCOPES\tENABLED\tCREATED\tEXPIRES\tLAST ACCESS\tFROM\tHOST\tRECENT ADDRESSES")
	for _, t := range v.Tokens {
		recent := make([]string, len(t.RecentAddresses))
		for i, a := range t.RecentAddresses {
			recent[i] = store.CleanHost(a.IP)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Label, strings.Join(t.Scopes, " "), t.Enabled,
			t.CreatedAt.Format(time.RFC3339), when(t.ExpiresAt, "never"), when(t.LastUsedAt, "no access yet"),
			str(t.LastUsedIP), str(t.LastUsedHost), cmp.Or(strings.Join(recent, ","), "-"))
	}
	return tw.Flush()
}

func printCheck(w io.Writer, data []byte) error {
	var v struct {
		Problems []string `json:"problems"`
		Repaired int      `json:"repaired"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if len(v.Problems) == 0 {
		_, err := fmt.Fprintln(w, "store is consistent")
		return err
	}
	for _, p := range v.Problems {
		fmt.Fprintln(w, p)
	}
	_, err := fmt.Fprintf(w, "%d problems, %d repaired\n", len(v.Problems), v.Repaired)
	return err
}
