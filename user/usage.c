/* usage.c: the help text, kept in one place so the whole help and each command's agree: option
 * entries in groups, the notes and the examples. tests/integration/core.sh checks the whole text is
 * the README's usage block; observability.sh that the man page and the completion name its options. */
#include <stdio.h>
#include <string.h>
#include "usage.h"

/* One entry of TARGET, RULE or OPTIONS: the option words it documents and its lines (after the
 * 8-column margin, where the first entry of a group names the group). */
static const struct option_help {
	const char *group;
	const char *words;
	const char *text;
} options_help[] = {
	{ "TARGET", "cgroup",
	  "--cgroup PATH   a cgroup v2 directory: a path under the cgroup2 mount\n"
	  "                (/sys/fs/cgroup/unified/docker/ID) or as /proc/PID/cgroup names it,\n"
	  "                relative to the cgroup2 root (/docker/ID or docker/ID)\n" },
	{ "TARGET", "self parent",
	  "--self [--parent]\n"
	  "                the cgroup hostlo runs in, or its parent (an init container's pod),\n"
	  "                found in the host's cgroup2 tree even in a private cgroup namespace\n" },
	{ "TARGET", "pid",
	  "--pid PID       the cgroup v2 cgroup of process PID\n" },
	{ "TARGET", "container",
	  "--container ID|NAME\n"
	  "                a container's cgroup: a full ID or unique ID prefix (Docker, Podman,\n"
	  "                containerd, Kubernetes and CRI-O layouts), a Docker name (asked of\n"
	  "                the Docker API at $DOCKER_HOST or /var/run/docker.sock), or a\n"
	  "                containerd task ID (ctr run's /NAMESPACE/ID)\n" },
	{ "RULE", "connect always real-peer",
	  "--connect [tcp:|udp:]PORT[-PORT][=ADDR[:PORT]] [--always] [--real-peer]\n"
	  "                connects (and, for udp, datagrams) to 127.0.0.1, ::1 or ::ffff:127.0.0.1\n"
	  "                on PORT (or the range) go to ADDR (IPv4) instead, on the same port or\n"
	  "                from :PORT on. Without =ADDR: the default IPv4 gateway of the target's\n"
	  "                network namespace, read from a process in the cgroup; when that is an\n"
	  "                address of this host, a TCP connect there also reaches a host service\n"
	  "                that listens only on 127.0.0.1 (and only these connects do), and\n"
	  "                the host service sees the client as 127.0.0.1 (its port, the\n"
	  "                container's), unless --real-peer: then as the container's address.\n"
	  "                The app still sees the address it asked for (getpeername, a reply's\n"
	  "                source). A port with a listener in the caller's own netns stays local,\n"
	  "                unless --always\n" },
	{ "RULE", "bind",
	  "--bind PORT[-PORT][=ADDR]\n"
	  "                binds to 127.0.0.1 on those ports become binds to ADDR (default\n"
	  "                0.0.0.0); binds to ::1 on those ports become binds to ::\n" },
	{ "OPTIONS", "j",
	  "-j, --json      print JSON (a failure too: {\"error\": \"...\"} on stderr)\n" },
	{ "OPTIONS", "dry-run",
	  "--dry-run       resolve and print the plan, attach nothing\n" },
	{ "OPTIONS", "create",
	  "--create        (attach) make the --cgroup PATH first if it does not exist, so a\n"
	  "                runtime's parent cgroup is attached before any container starts\n" },
	{ "OPTIONS", "all",
	  "--all           (detach) remove every attachment and everything hostlo pinned\n" },
	{ "OPTIONS", "prometheus",
	  "--prometheus    (stats) the Prometheus text format: hostlo_<counter>_total\n" },
	{ "OPTIONS", "watch",
	  "--watch SECONDS (stats) refresh every SECONDS, showing what changed in each interval\n" },
	{ "OPTIONS", "every",
	  "--every SECONDS (gc) run forever: a pass, then the counters, every SECONDS\n" },
	{ "OPTIONS", "listen",
	  "--listen ADDR:PORT\n"
	  "                (serve) where to serve /metrics and /healthz (default 127.0.0.1:9477)\n" },
	{ "OPTIONS", "config",
	  "--config FILE   (watch) rules by container name, image or label, JSON\n"
	  "                (default /etc/hostlo/watch.conf; labels io.hostlo.connect and\n"
	  "                io.hostlo.bind win over it)\n" },
	{ "OPTIONS", "cgroup-root",
	  "--cgroup-root PATH\n"
	  "                where the host's cgroup2 tree is mounted (default: from mountinfo)\n" },
	{ "OPTIONS", "v",
	  "-v, --verbose   more detail on errors (the libbpf and verifier log)\n" },
};

static const char notes[] =
"attach sets the cgroup's complete rule set: attaching again replaces it atomically. The\n"
"programs and rules are pinned in bpffs (/sys/fs/bpf/hostlo, or $HOSTLO_BPFFS/hostlo) and stay\n"
"after hostlo exits; they cover the cgroup and every cgroup below it. stats has one row per\n"
"calling process's own cgroup (one per container when attached at their parent). Every\n"
"command but attach (kept fast with thousands attached) first removes the attachments of\n"
"cgroups that no longer exist; gc does only that.\n"
"trace prints each rewrite as it happens (time, container, pid, command, what became what)\n"
"until Ctrl-C, then how many events were dropped; the programs make no event otherwise.\n"
"serve answers /metrics (what stats --prometheus prints, after a gc) and /healthz over HTTP.\n"
"watch runs until SIGTERM: every Docker container whose labels (io.hostlo.connect=5432,udp:53,\n"
"io.hostlo.bind=3000: RULEs, comma-separated, '!' after a connect item for --always) or config\n"
"entry asks for rules is attached when its cgroup appears, before its entrypoint runs, again at\n"
"each restart; SIGHUP reloads the config. attach by hand is never changed by it (list: origin).\n";

static const char *const examples[] = {
	"hostlo attach --cgroup /docker --connect 5432 --bind 3000",
	"hostlo attach --container web --connect 5432",
	"hostlo attach --pid 4242 --connect 8000-8010=198.18.0.1 --connect 6380=198.18.0.1:6379",
	"hostlo stats -j",
	"hostlo detach --cgroup /docker",
};

static const char exit_status[] =
	"Exit status: 0 success, 1 the request could not be carried out, 2 malformed command line.\n";

bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* Whether a command taking these options takes one of the entry's words. */
static bool takes(const char *options, const char *words)
{
	char word[32];

	for (const char *p = words; *p; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");

		snprintf(word, sizeof(word), "%.*s", (int)n, p);
		if (word_in(options, word))
			return true;
		p += n;
	}
	return false;
}

/* The entries a command takes (NULL: all of them), each line after its margin. */
static void print_options(const char *options)
{
	const char *group = NULL;

	for (size_t i = 0; i < sizeof(options_help) / sizeof(options_help[0]); i++) {
		const struct option_help *h = &options_help[i];

		if (options && !takes(options, h->words))
			continue;
		for (const char *line = h->text; *line;) {
			size_t n = strcspn(line, "\n") + 1;
			bool first = !group || strcmp(group, h->group) != 0;

			printf("%-8s%.*s", first ? h->group : "", (int)n, line);
			group = h->group;
			line += n;
		}
	}
}

void usage_all(const char *const *synopses, size_t n)
{
	fputs("Usage: hostlo COMMAND [OPTIONS]\n\n", stdout);
	for (size_t i = 0; i < n; i++)
		printf("  %s\n", synopses[i]);
	putchar('\n');
	print_options(NULL);
	printf("\n%s\nEXAMPLES\n", notes);
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
		printf("  %s\n", examples[i]);
	printf("\n%s", exit_status);
}

void usage_command(const char *name, const char *synopsis, const char *options)
{
	char prefix[32];
	bool shown = false;

	/* the synopsis without the whole help's column alignment */
	fputs("Usage: ", stdout);
	for (const char *p = synopsis; *p; p++)
		if (*p != ' ' || p[1] != ' ')
			putchar(*p);
	fputs("\n\n", stdout);
	print_options(options);
	snprintf(prefix, sizeof(prefix), "hostlo %s ", name);
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		if (strncmp(examples[i], prefix, strlen(prefix)) != 0)
			continue;
		printf("%s  %s\n", shown ? "" : "\nEXAMPLES\n", examples[i]);
		shown = true;
	}
	printf("\n%s", exit_status);
}
