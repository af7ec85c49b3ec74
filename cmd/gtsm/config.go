package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// The config file (--config FILE, env GTSM_CONFIG) holds flag values in YAML,
// one key per flag, named as on the command line without the dashes:
//
//	bootstrap-servers: kafka1:9093,kafka2:9093   # every command that has the flag
//	log-format: json
//	produce:                                     # only gtsm produce
//	  compression: zstd
//	  kafka-prop: {client.id: gtsm-loader, linger.ms: 20}
//	process:
//	  db: /data/gtsm.duckdb
//	  flush-interval: 500ms
//	"bottle inspect":
//	  samples: 3
//
// A list sets a repeatable flag once per element; a map sets it once per
// key=value pair. A flag given on the command line wins; then the
// environment variable its help names ("env NAME"); then the file; then the
// built-in default. A key no command knows is an error, so a typo cannot be
// silently ignored.

// envInUsage finds the environment variable a flag's help names.
var envInUsage = regexp.MustCompile(`\benv ([A-Z][A-Z0-9_]+)`)

// flagEnv returns the environment variable that sets f, or "".
func flagEnv(f *pflag.Flag) string {
	if m := envInUsage.FindStringSubmatch(f.Usage); m != nil {
		return m[1]
	}
	return ""
}

// applyConfig fills each flag of fs not given on the command line from the
// config file, unless its environment variable is set (the flag's default
// already came from it, see envOr, or the command reads it after parsing).
func applyConfig(env *environ, fs *pflag.FlagSet, c *commonFlags) error {
	path := c.config
	if !fs.Changed("config") {
		path = env.getenv("GTSM_CONFIG")
	}
	if path == "" {
		return nil
	}
	vals, err := loadConfig(path, c.name, env.commandFlags)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		f := fs.Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		if ev := flagEnv(f); ev != "" && env.getenv(ev) != "" {
			continue
		}
		for _, v := range vals[name] {
			if err := fs.Set(name, v); err != nil {
				return usageError{fmt.Sprintf("config %s: %s: %s", path, name, redactFlagError(err.Error()))}
			}
		}
	}
	return nil
}

// loadConfig reads the file and returns, for command cmd, each flag's
// values as strings: the command's section over the top level. known holds
// each command's flag names, to refuse keys no command has.
func loadConfig(path, cmd string, known map[string]map[string]bool) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("config: %v", err)}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, usageError{fmt.Sprintf("config %s: %v", path, err)}
	}
	anyHas := func(key string) bool {
		for _, fl := range known {
			if fl[key] {
				return true
			}
		}
		return false
	}
	top, section := map[string][]string{}, map[string][]string{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		v := doc[k]
		if flags, isCmd := known[k]; isCmd {
			m, ok := v.(map[string]any)
			if !ok && v != nil {
				errs = append(errs, fmt.Errorf("%s: want a map of flag names to values", k))
				continue
			}
			for _, fk := range slices.Sorted(maps.Keys(m)) {
				if !flags[fk] || fk == "config" {
					errs = append(errs, fmt.Errorf("%s: gtsm %s has no flag --%s", k, k, fk))
					continue
				}
				sv, err := configValues(m[fk])
				if err != nil {
					errs = append(errs, fmt.Errorf("%s.%s: %w", k, fk, err))
					continue
				}
				if k == cmd {
					section[fk] = sv
				}
			}
			continue
		}
		if !anyHas(k) || k == "config" {
			errs = append(errs, fmt.Errorf("%s: no command has a flag --%s (and it is no command name)", k, k))
			continue
		}
		sv, err := configValues(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		top[k] = sv
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{fmt.Sprintf("config %s: %v", path, strings.ReplaceAll(err.Error(), "\n", "; "))}
	}
	maps.Copy(top, section)
	return top, nil
}

// configValues turns a YAML value into flag values: a scalar is one, a list
// one per element, a map one key=value per entry (for -X / --kafka-prop).
func configValues(v any) ([]string, error) {
	scalar := func(v any) (string, error) {
		switch v.(type) {
		case map[string]any, []any:
			return "", errors.New("nested too deep: want a scalar")
		case nil:
			return "", nil
		}
		return fmt.Sprint(v), nil
	}
	switch v := v.(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case map[string]any:
		out := make([]string, 0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			s, err := scalar(v[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, k+"="+s)
		}
		return out, nil
	}
	s, err := scalar(v)
	return []string{s}, err
}
