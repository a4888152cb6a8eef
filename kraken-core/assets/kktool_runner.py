# Runs one step of a custom Kraken tool (a Python module with the original
# agent's tool interface: run, collect_tests, run_tests, run_analysis,
# run_artifacts, run_data) for the Kraken in Rust agent.
#
#   python3 kktool_runner.py MODULE_DIR MODULE STEP_FILE RESULT_FILE
#
# MODULE_DIR is put first in sys.path (with MODULE_DIR/vendor after it),
# MODULE imported, and the step (JSON in STEP_FILE) given to its functions
# in the original's order. What they report goes to RESULT_FILE as JSON
# lines ({"test-results": [...]}, {"issues": [...]}, {"artifacts": [...]},
# {"data": ...}), the last line being the step's status: {"status": "done"}
# or {"status": "error", "reason": "retcode"|"step-timeout"|"exception",
# ...}. The tool's logging and prints go to the step's log.
import importlib
import inspect
import json
import logging
import os
import sys
import traceback


def main():
    module_dir, module, step_file, result_file = sys.argv[1:5]
    logging.basicConfig(format='%(message)s', level=logging.INFO, stream=sys.stderr)
    with open(result_file, 'a') as out:
        def emit(obj):
            out.write(json.dumps(obj) + '\n')
            out.flush()

        try:
            with open(step_file) as f:
                step = json.load(f)
            sys.path.insert(0, module_dir)
            sys.path.insert(1, os.path.join(module_dir, 'vendor'))
            tool = importlib.import_module(module)
            commands = [n for n, o in inspect.getmembers(tool)
                        if inspect.isfunction(o) and not n.startswith('_')]
            runs = [c for c in ('run_tests', 'run_analysis', 'run_artifacts', 'run_data', 'run')
                    if c in commands]
            if not runs:
                emit({'status': 'error', 'reason': 'exception',
                      'msg': 'tool module %s has none of run, run_tests, run_analysis, '
                             'run_artifacts, run_data (it has: %s)' % (module, ', '.join(commands))})
                return
            if 'collect_tests' in commands and not step.get('tests'):
                step['tests'] = tool.collect_tests(step)
            ret, msg = 0, ''
            for cmd in runs:
                if cmd == 'run_tests':
                    ret, msg = tool.run_tests(step, report_result=lambda r: emit({'test-results': [r]}))
                elif cmd == 'run_analysis':
                    ret, msg = tool.run_analysis(step, report_issue=lambda i: emit({'issues': [i]}))
                elif cmd == 'run_artifacts':
                    ret, msg = tool.run_artifacts(step, report_artifact=lambda a: emit({'artifacts': [a]}))
                elif cmd == 'run_data':
                    ret, msg = tool.run_data(step, report_data=lambda d: emit({'data': d}))
                else:
                    ret, msg = tool.run(step)
                if ret != 0:
                    break
            if ret == 0:
                emit({'status': 'done'})
            elif ret == 10000:
                emit({'status': 'error', 'reason': 'step-timeout', 'msg': msg})
            else:
                emit({'status': 'error', 'reason': 'retcode', 'retcode': ret, 'msg': msg})
        except Exception:
            emit({'status': 'error', 'reason': 'exception', 'msg': traceback.format_exc()})


if __name__ == '__main__':
    main()
