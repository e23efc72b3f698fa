import { CommanderError } from 'commander';
import t from 'tap';
import {
  CliError,
  describeError,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  reportError,
  usageError,
} from '../../../services/cli/errors.ts';
import { ApiError, ClientError } from '../../../services/client/index.ts';

t.test('errors print as CODE: message, with the request id when there is one', async (t) => {
  t.equal(
    describeError(new ApiError('NAME_TAKEN', 'node-a', {}, 409, 'req-1')),
    'NAME_TAKEN: the name is already taken by another object: node-a (request req-1)',
  );
  t.equal(
    describeError(new ClientError('UNAVAILABLE', 'https://a: ECONNREFUSED')),
    'UNAVAILABLE: no endpoint could be reached: https://a: ECONNREFUSED',
  );
  t.equal(
    describeError(new CliError('HOME_EXISTS', '/h')),
    'HOME_EXISTS: the home directory already holds a cluster: /h',
  );
  const fsError = Object.assign(new Error("EACCES: permission denied, open '/x'"), {
    code: 'EACCES',
  });
  t.equal(describeError(fsError), "EACCES: permission denied, open '/x'", 'no code twice');
  t.equal(describeError(new Error('two\nlines')), 'two lines', 'always one line');
});

t.test('exit codes: 0 help, 2 usage, 1 anything else', async (t) => {
  let written = '';
  const write = (text: string) => {
    written += text;
  };
  t.equal(reportError(new CommanderError(0, 'commander.helpDisplayed', ''), write), EXIT_OK);
  t.equal(reportError(new CommanderError(1, 'commander.unknownOption', 'x'), write), EXIT_USAGE);
  t.equal(reportError(new CommanderError(1, 'commander.help', ''), write), EXIT_USAGE);
  t.equal(written, '', 'commander writes its own messages');
  t.equal(reportError(usageError('a and b do not go together'), write), EXIT_USAGE);
  t.match(written, /^error: a and b do not go together\n/);
  written = '';
  t.equal(reportError(new CliError('CA_HASH_MISMATCH'), write), EXIT_FAILED);
  t.match(written, /^error: CA_HASH_MISMATCH: /);
});
