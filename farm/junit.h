/* mpfarm: JUnit XML report (the dialect Jenkins, GitLab and GitHub reporters read).
 *
 * <testsuites name tests failures errors skipped time>
 *   <testsuite name=BOARD hostname timestamp tests failures errors skipped time>
 *     <properties><property name value/>...</properties>
 *     <testcase classname="SUITE.BOARD" name time>
 *       <failure message type>expected vs actual</failure> | <error ...> | <skipped message/>
 *       <system-out>board output</system-out>
 *     </testcase>
 *     <system-out>REPL transcript</system-out>
 *   </testsuite>
 * </testsuites>
 */
#ifndef FARM_JUNIT_H
#define FARM_JUNIT_H

#include <stdio.h>
#include "buf.h"
#include "err.h"
#include "result.h"

/* Bounds of what one report element may carry (see junit.c). */
#define FARM_JUNIT_ATTR_MAX 1024u           /* escaped bytes of a message/type attribute, "…" at the cut */
#define FARM_JUNIT_BODY_MAX (1024u * 1024u) /* input bytes of one body; the rest noted "[truncated N bytes]" */

/* Append s[0..len) to out as XML 1.0 character data or attribute value:
 * & < > " ' escaped; \t \n \r kept (as &#9; &#10; &#13; in attributes);
 * other C0 controls, DEL and C1 shown as control pictures/"\xNN"; invalid UTF-8 bytes as
 * "\xNN"; nothing dropped, nothing forbidden emitted raw. */
/* Exact forms, in junit.c: CR is &#13; in text too (a raw CR would be read back as LF),
 * C0 as U+2400+byte, DEL as U+2421, C1 as "\u{0085}", U+FFFE/U+FFFF as "\u{FFFE}".
 * On failure (FARM_ENOMEM, FARM_ELIMIT) out is left as it was. */
int farm_xml_escape(struct farm_buf *out, const char *s, size_t len, int attribute);

/* Serialise the run into out. */
int farm_junit_render(struct farm_buf *out, const struct farm_run_result *r);
/* Write path atomically (temp file in the same directory, fsync, rename). */
int farm_junit_write(const char *path, const struct farm_run_result *r, struct farm_err *e);

#endif
