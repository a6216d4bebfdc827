/* mpfarm: command-line commands and exit codes (documented in README.md). */
#ifndef FARM_CLI_H
#define FARM_CLI_H

#include <signal.h>

enum farm_exit {
	FARM_EXIT_OK = 0,        /* every test passed (skips allowed) */
	FARM_EXIT_FAILED = 1,    /* at least one test failed, no infrastructure error */
	FARM_EXIT_USAGE = 2,     /* bad invocation or bad input files (inventory, suite, firmware) */
	FARM_EXIT_INFRA = 3,     /* a board could not be reached, booted or kept alive; report I/O */
	FARM_EXIT_INTERRUPTED = 130, /* SIGINT/SIGTERM: the report is still written */
};

struct farm_cli {
	const volatile sig_atomic_t *cancel; /* set by main's signal handler */
};

struct farm_command {
	const char *name;
	int (*handler)(const struct farm_cli *cli, int argc, char **argv);
	const char *summary;
	const char *usage;
};

int farm_cmd_run(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_inventory(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_exec(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_flash(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_runners(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_detect(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_doctor(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_firmware(const struct farm_cli *cli, int argc, char **argv);
int farm_cmd_cache(const struct farm_cli *cli, int argc, char **argv);

#endif
