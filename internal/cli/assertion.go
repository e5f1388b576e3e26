package cli

import (
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// AddAssertionKeyCommands adds the `assertion-keys` subcommands to cmd:
// show and rotate the keys that sign identity assertions.
func AddAssertionKeyCommands(cmd *cobra.Command, connect Connect) {
	path := func(alg string) string { return "/tokengate/assertion-keys/" + url.PathEscape(alg) }
	show := &cobra.Command{
		Use:   "show [--algorithm ES256|RS256|EdDSA] [--json]",
		Short: "Show which assertion key signs now, which signs next and when, which old keys are still published",
		Args:  cobra.NoArgs,
	}
	showAlg := show.Flags().String("algorithm", "ES256", "the keys of this algorithm")
	showJSON := show.Flags().Bool("json", false, "print the keys as JSON")
	show.RunE = func(c *cobra.Command, _ []string) error {
		return call(c, connect, http.MethodGet, path(*showAlg), nil, assertionKeysPrinter(*showJSON))
	}
	rotate := &cobra.Command{
		Use:   "rotate (--grace | --immediate) [--algorithm ES256|RS256|EdDSA] [--json]",
		Short: "Replace the key that signs identity assertions",
		Long: `Replace the key that signs identity assertions, in one of two modes:

  --grace      (planned) the next key, already published, signs once it has
               been published for jwks_max_age, so upstreams that fetch the
               key set at its max-age know it first; the old key stays
               published until the last assertion it signed has expired.
  --immediate  (a leaked key) fresh keys sign at once and the old keys leave
               the key set at once: assertions they signed stop verifying.`,
		Args: cobra.NoArgs,
	}
	rotAlg := rotate.Flags().String("algorithm", "ES256", "the keys of this algorithm")
	grace := rotate.Flags().Bool("grace", false, "the next key signs after jwks_max_age; old assertions verify until they expire")
	immediate := rotate.Flags().Bool("immediate", false, "fresh keys sign now; the old keys are withdrawn now")
	rotJSON := rotate.Flags().Bool("json", false, "print the keys as JSON")
	rotate.MarkFlagsMutuallyExclusive("grace", "immediate")
	rotate.RunE = func(c *cobra.Command, _ []string) error {
		if !*grace && !*immediate {
			return errors.New("rotate needs --grace (planned) or --immediate (a leaked key)")
		}
		mode := "grace"
		if *immediate {
			mode = "immediate"
		}
		return call(c, connect, http.MethodPost, path(*rotAlg), map[string]any{"mode": mode}, assertionKeysPrinter(*rotJSON))
	}
	cmd.AddCommand(show, rotate)
}

// assertionKeysPrinter prints the keys as JSON or as printSigning's
// summary without the token lifetime (an assertion's is per site).
func assertionKeysPrinter(asJSON bool) func(io.Writer, []byte) error {
	if asJSON {
		return printJSON
	}
	return func(w io.Writer, data []byte) error { return printKeys(w, data, "public key:", false) }
}
