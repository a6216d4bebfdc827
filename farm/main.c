/* mpfarm: entry point. The command table drives dispatch and help. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "diag.h"

static volatile sig_atomic_t cancel_flag;

/* First SIGINT/SIGTERM: stop cleanly (cancel = 1). Second: kill the workers
 * at once but still write the report (cancel = 2). Third: die now. */
static void on_signal(int sig)
{
	if (cancel_flag >= 2) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	cancel_flag = cancel_flag ? 2 : 1;
}

static const struct farm_command commands[] = {
	{ "run", farm_cmd_run, "flash, boot and test every selected board; write a JUnit report",
	  "mpfarm run -i INVENTORY -s SUITE [-s SUITE...] [-o REPORT_DIR] [--boards ID,...]\n"
	  "           [--tags TAG,...] [--port PORT,...] [--shard K/N] [--jobs N]\n"
	  "           [--board-timeout SECS] [--timeout boot=S,test=S,flash=S,build=S,board=S,stall=S]\n"
	  "           [--reflash always|changed|never] [--json-events FILE|-] [--lock-dir DIR]\n"
	  "           [--wait-lock SECS] [--ref REF] [--build-jobs N] [--cache-dir DIR] [--offline]\n"
	  "           [-v] [-q]" },
	{ "firmware", farm_cmd_firmware, "download and build the firmware of the selected boards (cached)",
	  "mpfarm firmware -i INVENTORY [--boards ID,...] [--tags TAG,...] [--port PORT,...]\n"
	  "           [--ref REF] [--build-jobs N] [--cache-dir DIR] [--offline]\n"
	  "           [--timeout SECS] [-o REPORT_DIR] [-q]" },
	{ "cache", farm_cmd_cache, "list or prune the firmware cache",
	  "mpfarm cache list [--cache-dir DIR] [--json]\n"
	  "       mpfarm cache prune --keep-days N [--cache-dir DIR]" },
	{ "flash", farm_cmd_flash, "flash one board with a firmware file and check it runs it",
	  "mpfarm flash BOARD_ID -i INVENTORY FIRMWARE [--format ihex|uf2|dfuse|elf|bin]\n"
	  "           [--base ADDRESS] [--lock-dir DIR] [--wait-lock SECS] [-q]" },
	{ "runners", farm_cmd_runners, "list the flash runners (and with --mcus the MCU flash maps)",
	  "mpfarm runners [--mcus]" },
	{ "inventory", farm_cmd_inventory, "validate an inventory file",
	  "mpfarm inventory check INVENTORY" },
	{ "detect", farm_cmd_detect, "list serial ports and USB boards with what they run",
	  "mpfarm detect [--json] [--inventory FILE] [--no-repl] [--timeout MS] [--exclude PORT,...]" },
	{ "doctor", farm_cmd_doctor, "check this user can open the farm's USB devices and serial ports",
	  "mpfarm doctor [--sys DIR] [--dev DIR]" },
	{ "exec", farm_cmd_exec, "run Python code on one board and print its output",
	  "mpfarm exec BOARD_ID -i INVENTORY [-t SECONDS] 'python code'   (code '-' reads stdin)" },
	{ NULL, NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "mpfarm %s - hardware-in-the-loop test farm for MicroPython boards\n\n"
		     "usage: mpfarm COMMAND [OPTIONS]\n       mpfarm --version | --help | help COMMAND\n\n"
		     "commands:\n", MPFARM_VERSION);
	for (const struct farm_command *c = commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\nexit codes: 0 all passed, 1 test failures, 2 bad invocation or input,\n"
		     "            3 infrastructure error, 130 interrupted\n"
		     "Run 'mpfarm COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		usage(stderr);
		return FARM_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("mpfarm %s\n", MPFARM_VERSION);
		return FARM_EXIT_OK;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return FARM_EXIT_OK;
	}
	if (!strcmp(cmd, "help")) {
		if (argc < 3) {
			usage(stdout);
			return FARM_EXIT_OK;
		}
		cmd = argv[2];
		for (const struct farm_command *c = commands; c->name; c++)
			if (!strcmp(c->name, cmd)) {
				printf("%s\n\nusage: %s\n", c->summary, c->usage);
				return FARM_EXIT_OK;
			}
	}
	struct farm_cli cli = { .cancel = &cancel_flag };
	for (const struct farm_command *c = commands; c->name; c++) {
		if (strcmp(c->name, cmd) != 0)
			continue;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--"))
				break;
			if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
				printf("%s\n\nusage: %s\n", c->summary, c->usage);
				return FARM_EXIT_OK;
			}
		}
		return c->handler(&cli, argc - 1, argv + 1);
	}
	const char *names[8];
	size_t n = 0;
	for (const struct farm_command *c = commands; c->name && n < 7; c++)
		names[n++] = c->name;
	names[n] = NULL;
	const char *dym = farm_did_you_mean(cmd, names);
	fprintf(stderr, "mpfarm: unknown command \"%s\"%s%s%s\n", cmd, dym ? " (did you mean \"" : "",
		dym ? dym : "", dym ? "\"?)" : "");
	fprintf(stderr, "Run 'mpfarm --help' for the list of commands.\n");
	return FARM_EXIT_USAGE;
}
