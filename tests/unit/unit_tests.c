/* unit_tests.c: rule parsing and target resolution against fake mountinfo, /proc and cgroup trees. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "cgtree.h"
#include "container.h"
#include "label.h"
#include "opts.h"
#include "preflight.h"
#include "report.h"
#include "rules.h"
#include "netns.h"
#include "target.h"
#include "usage.h"
#include "util.h"
#include "watch.h"
#include "watchconf.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* Each valid rule, parsed and printed back in canonical form. */
static void test_rules_valid(void **state)
{
	static const struct { const char *opt, *arg, *canon; } rows[] = {
		{ "connect", "5432", "--connect tcp:5432" },
		{ "connect", "tcp:5432", "--connect tcp:5432" },
		{ "connect", "5432=198.18.0.1", "--connect tcp:5432=198.18.0.1" },
		{ "connect", "tcp:8000-8010=198.18.0.1", "--connect tcp:8000-8010=198.18.0.1" },
		{ "connect", "6380=198.18.0.1:6379", "--connect tcp:6380=198.18.0.1:6379" },
		{ "connect", "1-65535=10.0.0.1", "--connect tcp:1-65535=10.0.0.1" },
		{ "connect", "65535=198.18.0.1:65535", "--connect tcp:65535=198.18.0.1:65535" },
		{ "connect", "udp:53", "--connect udp:53" },
		{ "connect", "udp:53=198.18.0.1", "--connect udp:53=198.18.0.1" },
		{ "bind", "3000", "--bind 3000=0.0.0.0" },
		{ "bind", "3000-3005", "--bind 3000-3005=0.0.0.0" },
		{ "bind", "3000=198.18.0.2", "--bind 3000=198.18.0.2" },
		{ "bind", "3000=0.0.0.0", "--bind 3000=0.0.0.0" },
	};
	char err[ERRLEN], buf[128];
	struct rule r;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc = strcmp(rows[i].opt, "connect") == 0 ? parse_connect(rows[i].arg, &r, err) :
							    parse_bind(rows[i].arg, &r, err);
		if (rc)
			fail_msg("%s %s: %s", rows[i].opt, rows[i].arg, err);
		rule_format(&r, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].canon);
	}
}

/* Each malformed rule is refused with a message that names the bad token. */
static void test_rules_invalid(void **state)
{
	static const struct { const char *opt, *arg, *names; } rows[] = {
		{ "connect", "0", "'0'" },
		{ "connect", "65536", "'65536'" },
		{ "connect", "99999999999999999999", "out of range" },
		{ "connect", "", "missing port" },
		{ "connect", "abc", "'abc'" },
		{ "connect", "54x", "'54x'" },
		{ "connect", "+80", "'+80'" },
		{ "connect", " 80", "' 80'" },
		{ "connect", "-80", "missing port" },
		{ "connect", "80-", "missing port" },
		{ "connect", "90-80", "reversed" },
		{ "connect", "sctp:80", "unknown protocol 'sctp'" },
		{ "connect", ":80", "unknown protocol ''" },
		{ "connect", "80=", "missing address" },
		{ "connect", "80=host.docker.internal", "not an IPv4 address" },
		{ "connect", "80=1.2.3", "not an IPv4 address" },
		{ "connect", "80=256.1.1.1", "not an IPv4 address" },
		{ "connect", "80=::1", "IPv6" },
		{ "connect", "80=127.0.0.1", "loop" },
		{ "connect", "80=127.1.2.3", "loop" },
		{ "connect", "80=0.0.0.0", "wildcard" },
		{ "connect", "80=224.0.0.1", "multicast" },
		{ "connect", "80=255.255.255.255", "broadcast" },
		{ "connect", "80=198.18.0.1:", "missing port" },
		{ "connect", "80=198.18.0.1:0", "'0'" },
		{ "connect", "80=198.18.0.1:x", "'x'" },
		{ "connect", "80-90=198.18.0.1:65530", "past 65535" },
		{ "bind", "0", "'0'" },
		{ "bind", "3000=127.0.0.1", "loop" },
		{ "bind", "3000=::", "IPv6" },
		{ "bind", "3000=239.1.1.1", "multicast" },
		{ "bind", "tcp:3000", "'tcp:3000'" },
	};
	char err[ERRLEN];
	struct rule r;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc = strcmp(rows[i].opt, "connect") == 0 ? parse_connect(rows[i].arg, &r, err) :
							    parse_bind(rows[i].arg, &r, err);
		if (rc == 0)
			fail_msg("%s %s was accepted", rows[i].opt, rows[i].arg);
		if (!strstr(err, rows[i].names))
			fail_msg("%s %s: message '%s' lacks '%s'", rows[i].opt, rows[i].arg, err, rows[i].names);
		assert_string_equal(strncmp(err, "--", 2) == 0 ? "ok" : err, "ok");
	}
}

static void test_ruleset_overlap(void **state)
{
	struct ruleset rs = { 0 };
	char err[ERRLEN];
	struct rule r;

	(void)state;
	assert_int_equal(parse_connect("5000-5010", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(parse_connect("5010=198.18.0.1", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), -1);
	assert_non_null(strstr(err, "overlaps --connect tcp:5000-5010"));
	/* a bind on the same port is another kind of rule: allowed */
	assert_int_equal(parse_bind("5005", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(rs.n, 2);
	/* the same port for udp is another protocol: allowed */
	assert_int_equal(parse_connect("udp:5005", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	/* --always needs a --connect right before it */
	assert_int_equal(ruleset_always(&rs, err), 0);
	assert_true(rs.r[2].always);
	assert_int_equal(parse_bind("6000", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(ruleset_always(&rs, err), -1);
	assert_non_null(strstr(err, "--always: applies to the --connect rule before it"));
}

/* Expanding to per-port entries and collapsing them back gives the same rules. */
static void test_ruleset_roundtrip(void **state)
{
	const char *connects[] = { "5432=198.18.0.1", "8000-8010=198.18.0.1:9000", "8011-8012=198.18.0.1",
				   "8013=198.18.0.9", "udp:53-54=198.18.0.1", "udp:55=198.18.0.1" };
	const char *binds[] = { "3000-3002", "3003=198.18.0.2" };
	struct ruleset rs = { 0 }, back = { 0 };
	struct hostlo_rule_key *k;
	struct hostlo_rule_val *v;
	char err[ERRLEN], a[128], b[128];
	struct rule r;
	size_t n;

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(parse_connect(connects[i], &r, err), 0);
		assert_int_equal(ruleset_add(&rs, &r, err), 0);
		if (i == 5)
			assert_int_equal(ruleset_always(&rs, err), 0); /* not merged with udp:53-54 */
	}
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(parse_bind(binds[i], &r, err), 0);
		assert_int_equal(ruleset_add(&rs, &r, err), 0);
	}
	n = ruleset_entries(&rs);
	assert_int_equal(n, 1 + 11 + 2 + 1 + 2 + 1 + 3 + 1);
	k = calloc(n, sizeof(*k));
	v = calloc(n, sizeof(*v));
	ruleset_expand(&rs, k, v);
	/* 8005 maps to 9005, network order */
	for (size_t i = 0; i < n; i++)
		if (k[i].port == 8005 && k[i].kind == HOSTLO_KIND_CONNECT_TCP)
			assert_int_equal(ntohs(v[i].port), 9005);
	/* reversed order must not matter */
	for (size_t i = 0; i < n / 2; i++) {
		struct hostlo_rule_key tk = k[i];
		struct hostlo_rule_val tv = v[i];

		k[i] = k[n - 1 - i];
		v[i] = v[n - 1 - i];
		k[n - 1 - i] = tk;
		v[n - 1 - i] = tv;
	}
	assert_int_equal(ruleset_collapse(k, v, n, &back, err), 0);
	assert_int_equal(back.n, rs.n);
	for (int i = 0; i < rs.n; i++) {
		rule_format(&rs.r[i], a, sizeof(a));
		rule_format(&back.r[i], b, sizeof(b));
		assert_string_equal(a, b);
	}
	assert_int_equal(back.r[0].addr, ip("198.18.0.1"));
	free(k);
	free(v);
}

/* A steering rule keeps its interface through the kernel's entries; adjacent ports that steer and
 * ports that do not never merge into one rule. */
static void test_expand_collapse_steer(void **state)
{
	struct ruleset rs = { 0 }, back;
	struct hostlo_rule_key k[3];
	struct hostlo_rule_val v[3];
	char err[ERRLEN];
	struct rule r;

	(void)state;
	assert_int_equal(parse_connect("5432-5433=198.18.0.1", &r, err), 0);
	r.host_ifindex = 7;
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(parse_connect("5434=198.18.0.1", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	ruleset_expand(&rs, k, v);
	assert_int_equal(v[0].flags & HOSTLO_RULE_STEER, HOSTLO_RULE_STEER);
	assert_int_equal(v[0].host_ifindex, 7);
	assert_int_equal(v[2].flags & HOSTLO_RULE_STEER, 0);
	assert_int_equal(ruleset_collapse(k, v, 3, &back, err), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(back.r[0].port_max, 5433);
	assert_int_equal(back.r[0].host_ifindex, 7);
	assert_int_equal(back.r[1].host_ifindex, 0);
}

/* --real-peer: only after a tcp --connect; carried by the entries' flags; formatted after --always;
 * ports that differ only in it never merge. */
static void test_real_peer(void **state)
{
	struct ruleset rs = { 0 }, back;
	struct hostlo_rule_key k[4];
	struct hostlo_rule_val v[4];
	char err[ERRLEN], buf[128];
	struct rule r;

	(void)state;
	assert_int_equal(ruleset_real_peer(&rs, err), -1);
	assert_string_equal(err, "--real-peer: applies to the tcp --connect rule before it, and there is none");
	assert_int_equal(parse_connect("5432-5433=198.18.0.1", &r, err), 0);
	r.host_ifindex = 7;
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(ruleset_always(&rs, err), 0);
	assert_int_equal(ruleset_real_peer(&rs, err), 0);
	rule_format(&rs.r[0], buf, sizeof(buf));
	assert_string_equal(buf, "--connect tcp:5432-5433=198.18.0.1 --always --real-peer");
	assert_int_equal(parse_connect("5434=198.18.0.1", &r, err), 0);
	r.host_ifindex = 7;
	r.always = true;
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(parse_connect("udp:53=198.18.0.1", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(ruleset_real_peer(&rs, err), -1);
	assert_int_equal(parse_bind("3000", &r, err), 0);
	assert_int_equal(ruleset_add(&rs, &r, err), 0);
	assert_int_equal(ruleset_real_peer(&rs, err), -1);
	rs.n = 2;
	ruleset_expand(&rs, k, v);
	assert_int_equal(v[0].flags, HOSTLO_RULE_ALWAYS | HOSTLO_RULE_STEER | HOSTLO_RULE_REAL_PEER);
	assert_int_equal(v[2].flags, HOSTLO_RULE_ALWAYS | HOSTLO_RULE_STEER);
	assert_int_equal(ruleset_collapse(k, v, 3, &back, err), 0);
	assert_int_equal(back.n, 2);
	assert_true(back.r[0].real_peer);
	assert_int_equal(back.r[0].port_max, 5433);
	assert_false(back.r[1].real_peer);
	rule_format(&back.r[1], buf, sizeof(buf));
	assert_string_equal(buf, "--connect tcp:5434=198.18.0.1 --always");
}

/* Peer entries: one per TCP target port; a second loopback port to the same target port is recorded. */
static void test_peer_entries(void **state)
{
	const char *connects[] = { "5432=198.18.0.1", "15432=198.18.0.1:5432", "7000-7001=198.18.0.2:8000",
				   "udp:53=198.18.0.1" };
	struct hostlo_rule_key k[8], pk[8];
	struct hostlo_rule_val v[8], pv[8];
	struct ruleset rs = { 0 };
	struct rule r;
	char err[ERRLEN];
	size_t n, m;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(parse_connect(connects[i], &r, err), 0);
		assert_int_equal(ruleset_add(&rs, &r, err), 0);
	}
	n = ruleset_entries(&rs);
	assert_int_equal(n, 5);
	ruleset_expand(&rs, k, v);
	/* 5432 has the peer entry of target port 5432; 15432 leads there too, so it is recorded */
	assert_int_equal(v[0].flags & HOSTLO_RULE_RECORD, 0);
	assert_int_equal(v[1].flags & HOSTLO_RULE_RECORD, HOSTLO_RULE_RECORD);
	assert_int_equal(v[2].flags & HOSTLO_RULE_RECORD, 0);
	assert_int_equal(v[3].flags & HOSTLO_RULE_RECORD, 0);
	assert_int_equal(v[4].flags & HOSTLO_RULE_RECORD, 0); /* udp: never a peer entry */
	m = ruleset_peers(k, v, n, pk, pv);
	assert_int_equal(m, 3);
	assert_int_equal(pk[0].kind, HOSTLO_KIND_PEER_TCP);
	assert_int_equal(pk[0].port, 5432);
	assert_int_equal(ntohs(pv[0].port), 5432);
	assert_int_equal(pv[0].addr, ip("198.18.0.1"));
	assert_int_equal(pk[1].port, 8000);
	assert_int_equal(ntohs(pv[1].port), 7000);
	assert_int_equal(pk[2].port, 8001);
	assert_int_equal(ntohs(pv[2].port), 7001);
	assert_int_equal(pv[2].addr, ip("198.18.0.2"));
}

/* A scratch directory standing in for /proc and a cgroup2 mount. */
static char root[PATH_MAX];

static void write_file(const char *rel, const char *text)
{
	char p[PATH_MAX * 2], dir[PATH_MAX * 3];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "mkdir -p \"$(dirname '%s')\"", p);
	assert_int_equal(system(dir), 0);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool fake_is_cgroup2(const char *path)
{
	char mnt[PATH_MAX + 16];

	snprintf(mnt, sizeof(mnt), "%s/cg", root);
	/* mount points named in the fake mountinfo count as cgroup2 too */
	return strncmp(path, mnt, strlen(mnt)) == 0 || strncmp(path, "/sys/fs/", 8) == 0;
}

static struct sysenv fake_env(void)
{
	static char mi[PATH_MAX + 16], proc[PATH_MAX + 16];

	snprintf(mi, sizeof(mi), "%s/mountinfo", root);
	snprintf(proc, sizeof(proc), "%s/proc", root);
	return (struct sysenv){ .mountinfo = mi, .proc = proc, .is_cgroup2 = fake_is_cgroup2 };
}

static int setup_tree(void **state)
{
	char cmd[PATH_MAX * 2 + 64];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/hostlo-unit-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/cg/docker/abc %s/v1/memory/x", root, root);
	assert_int_equal(system(cmd), 0);
	write_file("cg/docker/abc/cgroup.procs", "");
	write_file("cg/docker/notdir", "");
	return 0;
}

static int teardown_tree(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd);
}

static void test_mountinfo_hybrid(void **state)
{
	struct sysenv env = fake_env();
	char mnt[PATH_MAX], err[ERRLEN];

	(void)state;
	write_file("mountinfo",
		   "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		   "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
		   "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
	assert_int_equal(cgroup2_mount(&env, mnt, sizeof(mnt), err), 0);
	assert_string_equal(mnt, "/sys/fs/cgroup/unified");
}

static void test_mountinfo_pure_v2_and_escapes(void **state)
{
	struct sysenv env = fake_env();
	char mnt[PATH_MAX], err[ERRLEN];

	(void)state;
	/* a container's namespaced mount (root not "/") is only a fallback; escapes are decoded */
	write_file("mountinfo",
		   "25 1 0:22 /kubepods /host/cg rw shared:1 - cgroup2 cgroup2 rw\n"
		   "26 1 0:23 / /sys/fs/my\\040cgroup rw,nosuid shared:9 master:1 - cgroup2 cgroup2 rw,nsdelegate\n");
	assert_int_equal(cgroup2_mount(&env, mnt, sizeof(mnt), err), 0);
	assert_string_equal(mnt, "/sys/fs/my cgroup");

	write_file("mountinfo", "25 1 0:22 / /sys/fs/cgroup rw - cgroup cgroup rw,memory\n");
	assert_int_equal(cgroup2_mount(&env, mnt, sizeof(mnt), err), -1);
	assert_non_null(strstr(err, "no cgroup2 file system is mounted"));
}

static void test_cgroup_from_path(void **state)
{
	struct sysenv env = fake_env();
	char mnt[PATH_MAX + 16], err[ERRLEN], arg[PATH_MAX * 2 + 64];
	struct cgroup cg;

	(void)state;
	snprintf(mnt, sizeof(mnt), "%s/cg", root);
	/* the kernel's names, with or without the leading slash, and a full path all mean the same */
	assert_int_equal(cgroup_from_path(&env, mnt, "/docker/abc", &cg, err), 0);
	assert_string_equal(cg.rel, "/docker/abc");
	assert_int_equal(cg.level, 2);
	assert_int_equal(cgroup_from_path(&env, mnt, "docker/abc/", &cg, err), 0);
	assert_string_equal(cg.rel, "/docker/abc");
	snprintf(arg, sizeof(arg), "%s/docker/./abc", mnt);
	assert_int_equal(cgroup_from_path(&env, mnt, arg, &cg, err), 0);
	assert_string_equal(cg.rel, "/docker/abc");
	assert_int_equal(cgroup_from_path(&env, mnt, "/", &cg, err), 0);
	assert_int_equal(cg.level, 0);

	assert_int_equal(cgroup_from_path(&env, mnt, "/docker/nope", &cg, err), -1);
	assert_non_null(strstr(err, "no such cgroup"));
	assert_int_equal(cgroup_from_path(&env, mnt, "/docker/notdir", &cg, err), -1);
	assert_non_null(strstr(err, "not a directory"));
	assert_int_equal(cgroup_from_path(&env, mnt, "/docker/../../etc", &cg, err), -1);
	assert_non_null(strstr(err, "'..'"));
	snprintf(arg, sizeof(arg), "%s/v1/memory/x", root);
	assert_int_equal(cgroup_from_path(&env, mnt, arg, &cg, err), -1);
	assert_non_null(strstr(err, "not a cgroup v2 directory"));
	assert_int_equal(cgroup_from_path(&env, mnt, "", &cg, err), -1);
}

static void test_cgroup_from_pid(void **state)
{
	struct sysenv env = fake_env();
	char mnt[PATH_MAX + 16], err[ERRLEN];
	struct cgroup cg;

	(void)state;
	snprintf(mnt, sizeof(mnt), "%s/cg", root);
	write_file("proc/42/cgroup", "12:memory:/docker/abc\n0::/docker/abc\n");
	assert_int_equal(cgroup_from_pid(&env, mnt, "42", &cg, err), 0);
	assert_string_equal(cg.rel, "/docker/abc");

	write_file("proc/43/cgroup", "12:memory:/docker/abc\n");
	assert_int_equal(cgroup_from_pid(&env, mnt, "43", &cg, err), -1);
	assert_non_null(strstr(err, "not in any cgroup v2"));
	assert_int_equal(cgroup_from_pid(&env, mnt, "44", &cg, err), -1);
	assert_non_null(strstr(err, "no such process"));
	assert_int_equal(cgroup_from_pid(&env, mnt, "4x", &cg, err), -1);
	assert_non_null(strstr(err, "not a process id"));
	assert_int_equal(cgroup_from_pid(&env, mnt, "-1", &cg, err), -1);
	assert_int_equal(cgroup_from_pid(&env, mnt, "0", &cg, err), -1);
}

static void test_default_gateway(void **state)
{
	struct sysenv env = fake_env();
	char err[ERRLEN];
	uint32_t gw = 0;

	(void)state;
	/* two default routes: the lower metric wins; 010012C6 is 198.18.0.1 in raw network order */
	write_file("proc/50/net/route",
		   "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
		   "eth1\t00000000\t090012C6\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
		   "eth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
		   "eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
	assert_int_equal(default_gateway(&env, 50, &gw, err), 0);
	assert_int_equal(gw, ip("198.18.0.1"));

	write_file("proc/51/net/route",
		   "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
		   "eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
	assert_int_equal(default_gateway(&env, 51, &gw, err), -1);
	assert_non_null(strstr(err, "no default IPv4 route"));
	assert_int_equal(default_gateway(&env, 52, &gw, err), -1);
}

#define Z56 "00000000000000000000000000000000000000000000000000000000"

static void test_container_id_of(void **state)
{
	static const struct { const char *rel, *id; } rows[] = {
		{ "/docker/abcd1234" Z56, "abcd1234" Z56 },
		{ "/system.slice/docker-abcd1234" Z56 ".scope", "abcd1234" Z56 },
		{ "/machine.slice/libpod-abcd1234" Z56 ".scope/container", "abcd1234" Z56 },
		{ "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abcd1234" Z56 ".scope", "abcd1234" Z56 },
		{ "/kubepods/burstable/pod1/abcd1234" Z56, "abcd1234" Z56 },
		{ "/crio-abcd1234" Z56 ".scope", "abcd1234" Z56 },
		{ "/libpod_parent/libpod-abcd1234" Z56, "abcd1234" Z56 },   /* Podman, cgroupfs manager */
		{ "/libpod_parent/libpod-abcd1234" Z56 "/ctr", "abcd1234" Z56 },
		{ "/system.slice/docker-abcd1234" Z56, NULL },             /* a prefix without .scope: Podman's only */
		{ "/libpod_parent/libpod-conmon-abcd1234" Z56, NULL },
		{ "/machine.slice/libpod-conmon-abcd1234" Z56 ".scope", NULL },
		{ "/docker/ABCD1234" Z56, NULL },
		{ "/docker/abcd1234", NULL },
		{ "/user.slice/user-0.slice/session-1.scope", NULL },
		{ "/", NULL },
	};
	char id[CONTAINER_ID_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		bool found = container_id_of(rows[i].rel, id);

		if (found != (rows[i].id != NULL))
			fail_msg("%s: found=%d", rows[i].rel, found);
		if (found)
			assert_string_equal(id, rows[i].id);
	}
	assert_true(container_arg_valid("web-1_a.b"));
	assert_true(container_arg_valid("/web"));
	assert_false(container_arg_valid("a/b"));
	assert_false(container_arg_valid("-x"));
	assert_false(container_arg_valid("a?b"));
	assert_false(container_arg_valid(""));
}

/* Resolution by ID and prefix needs no runtime: the tree alone answers (Docker is unreachable here). */
static void test_container_cgroup(void **state)
{
	struct cgnode nodes[] = {
		{ 1, 0, "/", 0 },
		{ 2, 1, "/docker", 0 },
		{ 3, 2, "/docker/aaaa1111" Z56, 0 },
		{ 4, 3, "/docker/aaaa1111" Z56 "/sub", 0 },
		{ 5, 2, "/system.slice/docker-aaaa2222" Z56 ".scope", 0 },
		{ 6, 2, "/system.slice/docker-bbbb3333" Z56 ".scope", 0 },
	};
	struct cgtree t = { .nodes = nodes, .n = 6 };
	char rel[PATH_MAX], err[ERRLEN];

	(void)state;
	setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock", 1);
	assert_int_equal(container_cgroup(&t, "/cg", "aaaa1111" Z56, rel, sizeof(rel), err), 0);
	assert_string_equal(rel, "/docker/aaaa1111" Z56);
	assert_int_equal(container_cgroup(&t, "/cg", "bbbb", rel, sizeof(rel), err), 0);
	assert_string_equal(rel, "/system.slice/docker-bbbb3333" Z56 ".scope");
	assert_int_equal(container_cgroup(&t, "/cg", "aaaa1", rel, sizeof(rel), err), 0);
	assert_int_equal(container_cgroup(&t, "/cg", "aaaa", rel, sizeof(rel), err), -1);
	assert_non_null(strstr(err, "ambiguous ID prefix, matches 2 containers: aaaa11110000, aaaa22220000"));
	assert_int_equal(container_cgroup(&t, "/cg", "web", rel, sizeof(rel), err), -1);
	assert_non_null(strstr(err, "container web: not found (looked in the cgroup2 tree under /cg, containerd's tasks, and Docker at "
				    "/nonexistent/docker.sock: not reachable"));
	assert_non_null(strstr(err, "name it by --pid PID of a process in it, or --cgroup PATH"));
	setenv("DOCKER_HOST", "tcp://198.18.0.1:2375", 1);
	assert_int_equal(container_cgroup(&t, "/cg", "web", rel, sizeof(rel), err), -1);
	assert_non_null(strstr(err, "only unix:// sockets"));
	unsetenv("DOCKER_HOST");
}

/* containerd (ctr): a task's config.json names its cgroup, found by the task's ID in any namespace. */
static void write_task(const char *state, const char *ns, const char *id, const char *cgroups_path)
{
	char cmd[PATH_MAX * 2];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/io.containerd.runtime.v2.task/%s/%s", state, ns, id);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/io.containerd.runtime.v2.task/%s/%s/config.json", state, ns, id);
	assert_non_null(f = fopen(cmd, "w"));
	fprintf(f, "{\"ociVersion\": \"1.0.2\", \"linux\": {\"cgroupsPath\": \"%s\"}}", cgroups_path);
	fclose(f);
}

static void test_container_containerd(void **state)
{
	struct cgnode nodes[] = { { 1, 0, "/", 0 }, { 2, 1, "/default", 0 }, { 3, 2, "/default/web", 0 }, { 4, 1, "/k8s.io", 0 } };
	struct cgtree t = { .nodes = nodes, .n = 4 };
	char dir[] = "/tmp/hostlo-unit-XXXXXX", cmd[64], rel[PATH_MAX], err[ERRLEN];

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_task(dir, "default", "web", "/default/web");
	write_task(dir, "default", "gone", "/default/gone");                 /* no such cgroup (stopped) */
	write_task(dir, "k8s.io", "pod", "kubepods-pod1.slice:cri-containerd:pod"); /* systemd form: by ID */
	setenv("HOSTLO_CONTAINERD_STATE", dir, 1);
	setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock", 1);
	assert_int_equal(container_cgroup(&t, "/cg", "web", rel, sizeof(rel), err), 0);
	assert_string_equal(rel, "/default/web");
	assert_int_equal(container_cgroup(&t, "/cg", "/web", rel, sizeof(rel), err), 0);
	assert_int_equal(container_cgroup(&t, "/cg", "gone", rel, sizeof(rel), err), -1);
	assert_non_null(strstr(err, "container gone: not found"));
	assert_int_equal(container_cgroup(&t, "/cg", "pod", rel, sizeof(rel), err), -1);
	unsetenv("HOSTLO_CONTAINERD_STATE");
	unsetenv("DOCKER_HOST");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A tree read from a partial mount (a cgroup namespace's own: its root is not the cgroup2 root) does
 * not say that a cgroup it did not meet is gone; a tree of the whole cgroup2 hierarchy does. */
static void test_cgtree_partial(void **state)
{
	struct cgnode nodes[] = { { 1, 0, "/", 0 }, { 7, 1, "/app", 0 } };
	struct cgtree whole = { .nodes = nodes, .n = 2 }, part = { .nodes = nodes, .n = 2, .partial = 1 };
	const struct cgnode *n;

	(void)state;
	assert_null(cgtree_find(&whole, 9));
	n = cgtree_find(&part, 9);
	assert_non_null(n);
	assert_true(n->hidden);
	assert_string_equal(n->rel, "(not visible)");
	n = cgtree_find(&part, 7);
	assert_non_null(n);
	assert_false(n->hidden);
	assert_string_equal(n->rel, "/app");
}

/* Table cells: padded to the column, or cut with "…" to exactly its width (characters, not bytes). */
static void test_table_cell(void **unused)
{
	char buf[64];

	(void)unused;
	table_cell(buf, sizeof(buf), "/docker", 10, true);
	assert_string_equal(buf, "/docker   ");
	table_cell(buf, sizeof(buf), "/docker/0123456789", 10, true);
	assert_string_equal(buf, "/docker/0…");
	table_cell(buf, sizeof(buf), "/docker/0123456789", 10, false);
	assert_string_equal(buf, "/docker/0123456789");
	table_cell(buf, sizeof(buf), "/docker/0123", 12, true);
	assert_string_equal(buf, "/docker/0123");
	table_cell(buf, sizeof(buf), "/päth/ünïcode", 8, true);
	assert_string_equal(buf, "/päth/ü…");
	table_cell(buf, sizeof(buf), "-", 3, true);
	assert_string_equal(buf, "-  ");
	table_cell(buf, 6, "abcdefghij", 8, false);
	assert_string_equal(buf, "abcde");
}

/* A row belongs to a TARGET at or above its cgroup, or attached there; "/docker" is not "/docker-x". */
static void test_in_target(void **unused)
{
	struct cgroup docker = { .rel = "/docker", .id = 10 }, root = { .rel = "/", .id = 1 };

	(void)unused;
	assert_true(in_target(&docker, 11, 99, "/docker/abc"));
	assert_true(in_target(&docker, 10, 99, "/docker"));
	assert_true(in_target(&docker, 12, 10, "(gone)"));
	assert_false(in_target(&docker, 13, 99, "/docker-x/abc"));
	assert_false(in_target(&docker, 14, 99, "/dock"));
	assert_true(in_target(&root, 15, 99, "/anything"));
}

static void test_kernel_version(void **unused)
{
	int major = 0, minor = -1;

	(void)unused;
	assert_int_equal(kernel_version(&major, &minor), 0);
	assert_true(major >= 3 && minor >= 0);
	assert_true(kernel_at_least(major, minor));
	assert_true(kernel_at_least(major - 1, 99));
	assert_false(kernel_at_least(major, minor + 1));
	assert_false(kernel_at_least(major + 1, 0));
}

static void test_word_in(void **unused)
{
	(void)unused;
	assert_true(word_in("cgroup pid cgroup-root j", "cgroup-root"));
	assert_true(word_in("cgroup pid cgroup-root j", "j"));
	assert_false(word_in("cgroup-root j", "cgroup"));
	assert_false(word_in("pid", "p"));
}

/* parse_opts: a command takes only its own options; rules and targets are checked as they come. */
static int parse(const char *allowed, struct opts *o, ...)
{
	char *argv[16] = { "cmd" };
	int argc = 1;
	va_list ap;

	va_start(ap, o);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	return parse_opts("cmd", allowed, argc, argv, o);
}

static void test_parse_opts(void **unused)
{
	struct opts o;

	(void)unused;
	assert_int_equal(parse("cgroup connect always j", &o, "--cgroup", "/docker", "--connect", "5432", "-j", NULL), 0);
	assert_string_equal(o.cgroup, "/docker");
	assert_int_equal(o.rules.n, 1);
	assert_true(o.json);
	assert_int_equal(check_attach(&o), 0);
	assert_int_equal(parse("cgroup connect", &o, "--cgroup", "/docker", "-j", NULL), EXIT_USAGE);
	assert_int_equal(parse("cgroup pid", &o, "--cgroup", "/a", "--pid", "1", NULL), EXIT_USAGE);
	assert_int_equal(parse("pid", &o, "--pid", "x", NULL), EXIT_USAGE);
	assert_int_equal(parse("self parent", &o, "--parent", NULL), EXIT_USAGE);
	assert_int_equal(parse("cgroup", &o, "extra", NULL), EXIT_USAGE);
	assert_int_equal(parse("cgroup-root", &o, "--cgroup", NULL), EXIT_USAGE);
	assert_int_equal(parse("watch prometheus j", &o, "--watch", "5", NULL), 0);
	assert_int_equal(check_stats(&o), 0);
	assert_int_equal(o.watch_s, 5);
	assert_int_equal(parse("watch prometheus j", &o, "--prometheus", "-j", NULL), 0);
	assert_int_equal(check_stats(&o), EXIT_USAGE);
	assert_int_equal(parse("every", &o, "--every", "0", NULL), 0);
	assert_int_equal(check_gc(&o), EXIT_USAGE);
	assert_int_equal(parse("all cgroup", &o, "--all", NULL), 0);
	assert_int_equal(check_detach(&o), 0);
	assert_int_equal(parse("listen", &o, "--listen", "127.0.0.1:80", NULL), 0);
	assert_int_equal(check_serve(&o), 0);
	assert_int_equal(ntohs(o.listen_at.sin_port), 80);
}

/* A container as the Docker API shows it, labels given as a JSON object's text. */
static struct watch_ctr ctr(const char *name, const char *image, const char *labels)
{
	return (struct watch_ctr){ .id = "0123", .name = name, .image = image,
				   .labels = labels ? json_tokener_parse(labels) : NULL };
}

static void rules_text(const struct ruleset *rs, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < rs->n; i++) {
		char one[128];

		rule_format(&rs->r[i], one, sizeof(one));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : "", one);
	}
}

/* Labels: comma lists in the CLI's RULE syntax, '!' for --always; errors name container and value. */
static void test_watch_labels(void **state)
{
	static const struct { const char *labels; int rc; const char *want; } rows[] = {
		{ "{\"io.hostlo.connect\": \"5432,udp:53, 6380=198.18.0.1:6379\", \"io.hostlo.bind\": \"3000\"}", 1,
		  "--connect tcp:5432 --connect udp:53 --connect tcp:6380=198.18.0.1:6379 --bind 3000=0.0.0.0" },
		{ "{\"io.hostlo.connect\": \"5432!\"}", 1, "--connect tcp:5432 --always" },
		{ "{\"io.hostlo.bind\": \"3000-3002=198.18.0.2\"}", 1, "--bind 3000-3002=198.18.0.2" },
		{ "{\"io.hostlo.connect\": \"\"}", 0, "" },
		{ "{\"other\": \"5432\"}", 0, "" },
		{ NULL, 0, "" },
		{ "{\"io.hostlo.connect\": \"x\"}", -1,
		  "container web: io.hostlo.connect: bad value \"x\": 'x' is not a port number" },
		{ "{\"io.hostlo.connect\": \"5432,,53\"}", -1, "container web: io.hostlo.connect: bad value \"\": an empty item" },
		{ "{\"io.hostlo.bind\": \"3000!\"}", -1,
		  "container web: io.hostlo.bind: bad value \"3000!\": '!' (--always) is for connect items" },
		{ "{\"io.hostlo.connect\": \"5432=127.0.0.2\"}", -1,
		  "container web: io.hostlo.connect: bad value \"5432=127.0.0.2\": '127.0.0.2' is a loopback address: the rule would loop back to loopback" },
		{ "{\"io.hostlo.connect\": \"5432,5432\"}", -1, "container web: io.hostlo.connect: bad value \"5432\": " },
	};
	char err[ERRLEN], text[1024];
	struct ruleset rs;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct watch_ctr c = ctr("web", "busybox", rows[i].labels);
		int rc = watchconf_rules(NULL, &c, &rs, err);

		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d, want %d (%s)", i, rc, rows[i].rc, rc < 0 ? err : "");
		if (rc < 0) {
			assert_memory_equal(err, rows[i].want, strlen(rows[i].want));
		} else {
			rules_text(&rs, text, sizeof(text));
			assert_string_equal(text, rows[i].want);
			if (rc)
				assert_int_equal(rs.origin, RULE_ORIGIN_LABEL);
		}
		json_object_put(c.labels);
	}
}

/* The config file: the first matching entry by name glob, image and label; labels win over it. */
static void test_watch_config(void **state)
{
	static const char conf[] =
		"{\"containers\": ["
		" {\"name\": \"db-*\", \"connect\": [\"5432\"]},"
		" {\"image\": \"nginx*\", \"label\": \"tier=front\", \"bind\": \"80,443\"},"
		" {\"label\": \"tier\", \"connect\": [\"6379!\", \"udp:53\"]},"
		" {\"name\": \"bad\", \"connect\": [\"99999\"]}]}";
	static const struct { const char *name, *image, *labels; int rc, origin; const char *want; } rows[] = {
		{ "db-1", "postgres", NULL, 1, RULE_ORIGIN_CONFIG, "--connect tcp:5432" },
		{ "db-1", "postgres", "{\"io.hostlo.bind\": \"3000\"}", 1, RULE_ORIGIN_LABEL, "--bind 3000=0.0.0.0" },
		{ "web", "nginx:1", "{\"tier\": \"front\"}", 1, RULE_ORIGIN_CONFIG, "--bind 80=0.0.0.0 --bind 443=0.0.0.0" },
		{ "web", "nginx:1", "{\"tier\": \"back\"}", 1, RULE_ORIGIN_CONFIG, "--connect tcp:6379 --always --connect udp:53" },
		{ "web", "httpd", NULL, 0, 0, "" },
		{ "bad", "x", NULL, -1, 0,
		  "container bad: /etc/w.conf entry 4: connect: bad value \"99999\": port '99999' is out of range (1-65535)" },
	};
	struct watchconf wc;
	char err[ERRLEN], text[1024];
	struct ruleset rs;

	(void)state;
	assert_int_equal(watchconf_parse(&wc, conf, "/etc/w.conf", err), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct watch_ctr c = ctr(rows[i].name, rows[i].image, rows[i].labels);
		int rc = watchconf_rules(&wc, &c, &rs, err);

		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d, want %d (%s)", i, rc, rows[i].rc, rc < 0 ? err : "");
		if (rc < 0) {
			assert_string_equal(err, rows[i].want);
		} else {
			rules_text(&rs, text, sizeof(text));
			assert_string_equal(text, rows[i].want);
			assert_int_equal(rs.origin, rows[i].origin);
		}
		json_object_put(c.labels);
	}
	watchconf_free(&wc);
}

/* A malformed config file is refused as a whole, naming the entry and the key. */
static void test_watch_config_invalid(void **state)
{
	static const struct { const char *text, *want; } rows[] = {
		{ "{", "w.conf: not JSON: " },
		{ "[]", "w.conf: want an object with one key, \"containers\"" },
		{ "{\"containers\": [], \"x\": 1}", "w.conf: want an object with one key" },
		{ "{\"containers\": [1]}", "w.conf: entry 1: not an object" },
		{ "{\"containers\": [{\"connect\": [\"1\"]}]}", "w.conf: entry 1: selects nothing: give name, image or label" },
		{ "{\"containers\": [{\"name\": \"a\"}]}", "w.conf: entry 1: no rules: give connect or bind" },
		{ "{\"containers\": [{\"name\": \"a\", \"connect\": [1]}]}", "w.conf: entry 1: connect: not a string or an array of strings" },
		{ "{\"containers\": [{\"name\": \"\", \"bind\": \"1\"}]}", "w.conf: entry 1: name: not a non-empty string" },
		{ "{\"containers\": [{\"name\": \"a\", \"bind\": \"1\"}, {\"nam\": \"a\"}]}",
		  "w.conf: entry 2: unknown key \"nam\" (name, image, label, connect, bind)" },
	};
	struct watchconf wc;
	char err[ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (watchconf_parse(&wc, rows[i].text, "w.conf", err) != -1)
			fail_msg("row %zu: accepted", i);
		assert_memory_equal(err, rows[i].want, strlen(rows[i].want));
	}
	assert_int_equal(watchconf_load(&wc, "/nonexistent/watch.conf", true, err), 0);
	assert_null(wc.entries);
	assert_int_equal(watchconf_load(&wc, "/nonexistent/watch.conf", false, err), -1);
	assert_string_equal(err, "config /nonexistent/watch.conf: No such file or directory");
}

/* The agent's pid file is keyed on the bpffs the environment resolves to, not on its spelling. */
static void test_watch_pid_path(void **unused)
{
	char dir[] = "/tmp/hostlo-unit-XXXXXX", p[PATH_MAX], q[PATH_MAX + 32], want[PATH_MAX + 32];
	char path[PATH_MAX + 16], bpffs[PATH_MAX];

	(void)unused;
	unsetenv("HOSTLO_BPFFS");
	watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
	assert_string_equal(path, "/run/hostlo-watch.pid");
	assert_string_equal(bpffs, "/sys/fs/bpf");
	/* the default named, however spelled: the same file (the bug: set at all meant another file) */
	const char *dflt[] = { "/sys/fs/bpf", "/sys/fs/bpf/", "/sys/fs/bpf//", "/sys/fs/./bpf" };
	for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++) {
		setenv("HOSTLO_BPFFS", dflt[i], 1);
		watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
		assert_string_equal(path, "/run/hostlo-watch.pid");
	}
	/* another bpffs: beside it, through a trailing slash, "/./", ".." and a symlink */
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/bpffs", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(q, sizeof(q), "%s/link", dir);
	assert_int_equal(symlink(p, q), 0);
	snprintf(want, sizeof(want), "%s.watch.pid", p);
	const char *fmt[] = { "%s/bpffs", "%s/bpffs/", "%s/./bpffs", "%s/link/../bpffs", "%s/link", "%s/link/" };
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		snprintf(q, sizeof(q), fmt[i], dir);
		setenv("HOSTLO_BPFFS", q, 1);
		watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
		assert_string_equal(path, want);
		assert_string_equal(bpffs, p);
	}
	/* a path that does not exist (yet): as spelled, less its trailing slashes; never the default's */
	snprintf(q, sizeof(q), "%s/absent//", dir);
	setenv("HOSTLO_BPFFS", q, 1);
	watch_pid_path(path, sizeof(path), bpffs, sizeof(bpffs));
	snprintf(want, sizeof(want), "%s/absent.watch.pid", dir);
	assert_string_equal(path, want);
	unsetenv("HOSTLO_BPFFS");
	snprintf(q, sizeof(q), "rm -rf %s", dir);
	assert_int_equal(system(q), 0);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_rules_valid),
		cmocka_unit_test(test_rules_invalid),
		cmocka_unit_test(test_ruleset_overlap),
		cmocka_unit_test(test_ruleset_roundtrip),
		cmocka_unit_test(test_container_id_of),
		cmocka_unit_test(test_container_cgroup),
		cmocka_unit_test(test_cgtree_partial),
		cmocka_unit_test(test_container_containerd),
		cmocka_unit_test(test_table_cell),
		cmocka_unit_test(test_in_target),
		cmocka_unit_test(test_kernel_version),
		cmocka_unit_test(test_word_in),
		cmocka_unit_test(test_parse_opts),
		cmocka_unit_test(test_watch_labels),
		cmocka_unit_test(test_watch_config),
		cmocka_unit_test(test_watch_config_invalid),
		cmocka_unit_test(test_watch_pid_path),
	};
	const struct CMUnitTest tree[] = {
		cmocka_unit_test(test_expand_collapse_steer),
		cmocka_unit_test(test_real_peer),
		cmocka_unit_test(test_peer_entries),
		cmocka_unit_test(test_mountinfo_hybrid),
		cmocka_unit_test(test_mountinfo_pure_v2_and_escapes),
		cmocka_unit_test(test_cgroup_from_path),
		cmocka_unit_test(test_cgroup_from_pid),
		cmocka_unit_test(test_default_gateway),
	};

	return cmocka_run_group_tests_name("rules", pure, NULL, NULL) |
	       cmocka_run_group_tests_name("target", tree, setup_tree, teardown_tree);
}
